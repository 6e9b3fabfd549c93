"""Read or replace a decoder block's output, whatever form this transformers version gives it."""

from __future__ import annotations

from typing import Any, TypeAlias

import torch

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
