"""Several layers' sweep tails in one batched forward pass, for GPUs.

Batch row i has its reduction at block layers[i]. Blocks up to the first reduced layer
replay the clean outputs; each later block runs on the whole batch, and a hook then
puts back the clean output in rows whose reduced layer is still ahead and the reduced
hidden state in the row reduced at this block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from hsviewer.core.blocks import block_hidden, replace_hidden
from hsviewer.core.hooks import replay_prefix


def batched_tails(
    handle: Any, ids: Any, clean: dict[int, Any], layers: Sequence[int], reduced: Sequence[Any]
) -> list[Any]:
    """The (T, V) logits for each layer's reduction, from one forward pass of batch len(layers)."""
    import torch

    with torch.no_grad(), _replay_rows(handle.blocks, clean, layers, reduced):
        logits = handle.model(ids.expand(len(layers), -1), use_cache=False).logits.float()
    return list(logits)


@contextmanager
def _replay_rows(
    blocks: Sequence[Any], clean: dict[int, Any], layers: Sequence[int], reduced: Sequence[Any]
) -> Iterator[None]:
    first, n = min(layers), len(layers)
    expanded = {j: replace_hidden(clean[j], block_hidden(clean[j]).expand(n, -1, -1)) for j in range(first + 1)}
    start = _mix_rows(clean[first], first, layers, reduced, block_hidden(clean[first]).expand(n, -1, -1))
    with ExitStack() as stack:
        stack.enter_context(replay_prefix(blocks, expanded, first, start))
        for j in range(first + 1, max(layers) + 1):
            stack.enter_context(_hook(blocks[j], _row_fixing_hook(clean[j], j, layers, reduced)))
        yield


def _mix_rows(clean_j: Any, j: int, layers: Sequence[int], reduced: Sequence[Any], hidden: Any) -> Any:
    """Rows reduced later get block j's clean output, the row reduced at j its reduction."""
    out = hidden.clone()
    for i, layer in enumerate(layers):
        if layer > j:
            out[i] = block_hidden(clean_j)[0]
        elif layer == j:
            out[i] = reduced[i].to(out.dtype)
    return out


def _row_fixing_hook(clean_j: Any, j: int, layers: Sequence[int], reduced: Sequence[Any]) -> Callable:
    def hook(module: Any, args: Any, output: Any) -> Any:
        return replace_hidden(output, _mix_rows(clean_j, j, layers, reduced, block_hidden(output)))

    return hook


@contextmanager
def _hook(block: Any, hook: Callable) -> Iterator[None]:
    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
