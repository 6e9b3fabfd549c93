"""Where a loaded model keeps what the analyses use: its decoder blocks (and the form of what they
return) and its LM head.

Found once at load, for any architecture, without a table of attribute names.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import torch
from torch import nn

from hsviewer.core.errors import HsviewerError

# What a decoder block returns: recent transformers a bare hidden-state tensor, older ones a
# tuple whose first item is the hidden state and whose rest (cache, attentions) may be None.
BlockOutput: TypeAlias = torch.Tensor | tuple[Any, ...]


def block_hidden(output: BlockOutput) -> torch.Tensor:
    """The hidden state a block returns: the tensor itself, or the first item of a tuple."""
    return output if isinstance(output, torch.Tensor) else output[0]


def replace_hidden(output: BlockOutput, hidden: torch.Tensor) -> BlockOutput:
    """The block's output in its own format, with the hidden state swapped.

    Recent transformers return a bare tensor from decoder blocks, older ones a tuple;
    unpacking a tensor as a tuple (``hidden, *rest = output``) would silently take
    its first batch row instead.
    """
    if isinstance(output, torch.Tensor):
        return hidden
    return (hidden, *output[1:])


def find_blocks(model: nn.Module, n_layers: int | None = None) -> list[nn.Module]:
    """The decoder blocks: the largest ModuleList of identical modules, one per layer.

    Works for GPT-2 (transformer.h), Llama (model.layers), GPT-NeoX (gpt_neox.layers),
    OPT (model.decoder.layers) and the rest without a table of attribute names.
    """
    best: nn.ModuleList | None = None
    best_size = -1
    for module in model.modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(m) for m in module}) != 1:
            continue
        if n_layers is not None and len(module) != n_layers:
            continue
        size = sum(p.numel() for p in module.parameters())
        if size > best_size:
            best, best_size = module, size
    if best is None:
        raise HsviewerError("Could not find this model's decoder blocks (no list of identical layers).")
    return list(best)


def head_logits(head: nn.Module | None, states: torch.Tensor) -> torch.Tensor:
    """Float32 logits of some tokens' states; without a head the states are the logits."""
    with torch.no_grad():
        return (states if head is None else head(states)).float()


@contextmanager
def head_input(head: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record the LM head's input; the head then computes the last position's logits only."""
    seen: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        seen.append(args[0].detach())
        return (args[0][..., -1:, :], *args[1:])

    handle = head.register_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def separable_head(model: Any, ids: torch.Tensor) -> nn.Module | None:
    """The LM head when the logits are the head applied to its input and nothing more (no
    soft-capping or scaling after it); None otherwise, and the analyses take the model's logits."""
    head = model.get_output_embeddings()
    if not isinstance(head, nn.Module):
        return None
    try:
        with head_input(head) as seen:
            last = _last_logits(model, ids)
        own = head_logits(head, seen[-1][..., -1, :])
    except Exception:  # a model that cannot compute only the last position
        return None
    return head if len(seen) == 1 and torch.allclose(own, last, rtol=1e-4, atol=1e-5) else None


def _last_logits(model: Any, ids: torch.Tensor) -> torch.Tensor:
    """The model's own float32 logits at the last position."""
    with torch.no_grad():
        return model(ids, use_cache=False).logits[..., -1, :].float()
