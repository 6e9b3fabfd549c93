"""Context managers that watch or change decoder blocks during a forward pass.

Each one removes what it installed on exit, errors included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal, overload

import torch
from torch import nn

from hsviewer.core.model.anatomy import BlockOutput, block_hidden, replace_hidden


@overload
def capture_outputs(
    blocks: Sequence[nn.Module], raw: Literal[False] = False
) -> AbstractContextManager[dict[int, torch.Tensor]]: ...
@overload
def capture_outputs(blocks: Sequence[nn.Module], raw: bool) -> AbstractContextManager[dict[int, BlockOutput]]: ...
@contextmanager
def capture_outputs(blocks: Sequence[nn.Module], raw: bool = False) -> Iterator[dict[int, Any]]:
    """Record each block's output (its hidden state, or the raw output if raw) by index.

    The hidden states are copied into one tensor for all blocks, allocated at the first: kept
    among the pass's freed temporaries instead, glibc's heap could not reuse the space between
    them, and an 8,192-token clean pass of the default model held 0.6 GB more than it kept.
    """
    outputs: dict[int, Any] = {}  # the overloads above say which: tensors, or raw outputs
    stack: list[torch.Tensor] = []

    def record(i: int, output: BlockOutput) -> None:
        hidden = block_hidden(output).detach()
        if not stack:
            stack.append(hidden.new_empty((len(blocks), *hidden.shape)))
        same = stack[0].device == hidden.device and stack[0].shape[1:] == hidden.shape
        kept = stack[0][i].copy_(hidden) if same else hidden  # a model spread over devices keeps each where it is
        outputs[i] = replace_hidden(output, kept) if raw else kept

    with _on_each_output(blocks, record):
        yield outputs


@contextmanager
def distances_from(blocks: Sequence[nn.Module], reference: Mapping[int, torch.Tensor]) -> Iterator[dict[int, float]]:
    """Record, per block, the Frobenius norm of its hidden state (batch row 0) minus reference[i],
    without keeping the states."""
    norms: dict[int, float] = {}

    def measure(i: int, output: BlockOutput) -> None:
        norms[i] = float(torch.linalg.norm(block_hidden(output)[0].float() - reference[i][0].float()))

    with _on_each_output(blocks, measure):
        yield norms


@contextmanager
def _on_each_output(blocks: Sequence[nn.Module], see: Callable[[int, BlockOutput], None]) -> Iterator[None]:
    """Call see(block index, output) after each block's forward."""

    def make(i: int) -> Callable[[nn.Module, tuple[Any, ...], BlockOutput], None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: BlockOutput) -> None:
            see(i, output)

        return hook

    handles = [b.register_forward_hook(make(i)) for i, b in enumerate(blocks)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def replace_block_output(block: nn.Module, reducer: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Replace the block's hidden state by reducer(hidden state) of each batch row."""

    def hook(module: nn.Module, args: tuple[Any, ...], output: BlockOutput) -> BlockOutput:
        hidden = block_hidden(output)
        reduced = torch.stack([reducer(row) for row in hidden]).to(hidden.dtype)
        return replace_hidden(output, reduced)

    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def replay_prefix(
    blocks: Sequence[nn.Module], outputs: Mapping[int, BlockOutput], layer: int, hidden: torch.Tensor
) -> Iterator[None]:
    """Skip blocks 0..layer: they return the recorded clean outputs, block `layer` the given hidden.

    A reduction at block L cannot change blocks before it, so a sweep only needs to
    compute the blocks after L. The model's own forward still runs the embeddings,
    the later blocks, the final norm, the LM head and the loss, whatever the architecture.
    """
    saved = [b.__dict__.get("forward") for b in blocks[: layer + 1]]

    def stub(value: BlockOutput) -> Callable[..., BlockOutput]:
        return lambda *args, **kwargs: value

    try:
        for i, block in enumerate(blocks[:layer]):
            block.forward = stub(outputs[i])
        blocks[layer].forward = stub(replace_hidden(outputs[layer], hidden))
        yield
    finally:
        for block, old in zip(blocks[: len(saved)], saved, strict=True):
            if old is None:
                block.__dict__.pop("forward", None)
            else:
                block.forward = old
