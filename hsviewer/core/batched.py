"""Several layers' sweep tails in one batched forward pass, for GPUs.

Batch row i has its reduction at block layers[i]. Blocks up to the first reduced layer
replay the clean outputs; each later block runs on the whole batch, and a hook then
puts back the clean output in rows whose reduced layer is still ahead and the reduced
hidden state in the row reduced at this block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from hsviewer.core.blocks import BlockOutput, block_hidden, replace_hidden
from hsviewer.core.hooks import replay_prefix
from hsviewer.core.runs import pass_states

if TYPE_CHECKING:
    from hsviewer.core.models import ModelHandle

ForwardHook = Callable[[nn.Module, tuple[Any, ...], BlockOutput], BlockOutput]


def batched_tails(
    handle: ModelHandle,
    ids: torch.Tensor,
    clean: Mapping[int, BlockOutput],
    layers: Sequence[int],
    reduced: Sequence[torch.Tensor],
) -> list[torch.Tensor]:
    """Each layer's reduced run, as the (T, X) states its logits come from (pass_states), from
    one forward pass of batch len(layers)."""
    with _replay_rows(handle.blocks, clean, layers, reduced):
        return list(pass_states(handle, ids.expand(len(layers), -1)))


@contextmanager
def _replay_rows(
    blocks: Sequence[nn.Module],
    clean: Mapping[int, BlockOutput],
    layers: Sequence[int],
    reduced: Sequence[torch.Tensor],
) -> Iterator[None]:
    first, n = min(layers), len(layers)
    expanded = {j: replace_hidden(clean[j], block_hidden(clean[j]).expand(n, -1, -1)) for j in range(first + 1)}
    start = _mix_rows(clean[first], first, layers, reduced, block_hidden(clean[first]).expand(n, -1, -1))
    with ExitStack() as stack:
        stack.enter_context(replay_prefix(blocks, expanded, first, start))
        for j in range(first + 1, max(layers) + 1):
            stack.enter_context(_hook(blocks[j], _row_fixing_hook(clean[j], j, layers, reduced)))
        yield


def _mix_rows(
    clean_j: BlockOutput, j: int, layers: Sequence[int], reduced: Sequence[torch.Tensor], hidden: torch.Tensor
) -> torch.Tensor:
    """Rows reduced later get block j's clean output, the row reduced at j its reduction."""
    out = hidden.clone()
    for i, layer in enumerate(layers):
        if layer > j:
            out[i] = block_hidden(clean_j)[0]
        elif layer == j:
            out[i] = reduced[i].to(out.dtype)
    return out


def _row_fixing_hook(
    clean_j: BlockOutput, j: int, layers: Sequence[int], reduced: Sequence[torch.Tensor]
) -> ForwardHook:
    """A forward hook for block j that mixes its batched output's rows as _mix_rows says."""

    def hook(module: nn.Module, args: tuple[Any, ...], output: BlockOutput) -> BlockOutput:
        return replace_hidden(output, _mix_rows(clean_j, j, layers, reduced, block_hidden(output)))

    return hook


@contextmanager
def _hook(block: nn.Module, hook: ForwardHook) -> Iterator[None]:
    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
