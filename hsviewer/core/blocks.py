"""Find a causal LM's decoder blocks and read or replace their outputs, for any architecture."""

from __future__ import annotations

from typing import Any, TypeAlias

import torch
from torch import nn

from hsviewer.core.errors import HsviewerError

# What a decoder block returns: recent transformers a bare hidden-state tensor, older ones a
# tuple whose first item is the hidden state and whose rest (cache, attentions) may be None.
BlockOutput: TypeAlias = torch.Tensor | tuple[Any, ...]


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
