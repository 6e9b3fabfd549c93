"""Several layers' sweep tails in one batched forward pass, for GPUs.

Batch row i has its reduction at block layers[i]. Blocks up to the first reduced layer
replay the clean outputs. A later block j computes only the rows whose reduced layer is
before j: a pre-hook cuts its inputs (the hidden state and any batch-sized argument, such
as an attention mask or position ids) down to those rows, and a hook puts the full batch
back together, with block j's clean output in rows reduced later and the reduced hidden
state in the row reduced at j. Their output there is known without computing it, so a
batch costs what its rows' own tails cost, not len(layers) full tails.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from hsviewer.core.model.anatomy import BlockOutput, block_hidden, replace_hidden
from hsviewer.core.passes.clean import pass_states
from hsviewer.core.passes.hooks import replay_prefix

if TYPE_CHECKING:
    from hsviewer.core.model.loading import ModelHandle


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
    start = _Rows(clean[first], first, layers, reduced).assemble(None)
    with ExitStack() as stack:
        stack.enter_context(replay_prefix(blocks, expanded, first, start))
        for j in range(first + 1, max(layers) + 1):
            stack.enter_context(_own_rows_only(blocks[j], _Rows(clean[j], j, layers, reduced)))
        yield


class _Rows:
    """Which batch rows block j computes, and the known outputs of the others."""

    def __init__(self, clean_j: BlockOutput, j: int, layers: Sequence[int], reduced: Sequence[torch.Tensor]) -> None:
        self.clean = block_hidden(clean_j)[0]
        self.n = len(layers)
        self.active = [i for i, layer in enumerate(layers) if layer < j]
        # Rows reduced later keep block j's clean output; the row reduced at j gets its reduction.
        self.known = {i: reduced[i] if layer == j else self.clean for i, layer in enumerate(layers) if layer >= j}

    def take(self, value: Any) -> Any:
        """value with every batch-sized tensor in it (dim >= 2, n rows) cut to the active rows."""
        if isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[0] == self.n:
            return value[torch.tensor(self.active, device=value.device)]
        if isinstance(value, (tuple, list)):
            return type(value)(self.take(v) for v in value)
        if isinstance(value, dict):
            return {k: self.take(v) for k, v in value.items()}
        return value

    def assemble(self, computed: torch.Tensor | None) -> torch.Tensor:
        """The full batch: the computed rows (none before the first reduced layer) and the known ones."""
        like = self.clean if computed is None else computed
        out = torch.empty((self.n, *self.clean.shape), dtype=like.dtype, device=like.device)
        if computed is not None:
            out[self.active] = computed
        for i, hidden in self.known.items():
            out[i] = hidden.to(out.dtype)
        return out


@contextmanager
def _own_rows_only(block: nn.Module, rows: _Rows) -> Iterator[None]:
    """Block j computes only rows.active; the hook returns the assembled full batch."""

    def cut(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        return rows.take(args), rows.take(kwargs)

    def assemble(module: nn.Module, args: tuple[Any, ...], output: BlockOutput) -> BlockOutput:
        return replace_hidden(output, rows.assemble(block_hidden(output)))

    handles = [block.register_forward_pre_hook(cut, with_kwargs=True), block.register_forward_hook(assemble)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
