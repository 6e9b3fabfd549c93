"""Which blocks an intervention runs at: one, a list, a range or all, as the command line spells them.

Free of numpy and torch, so that the command line checks --layer while it parses, before it loads anything.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from typing import Any

from hsviewer.core.errors import HsviewerError

LayerChoice = int | Sequence[int] | str  # a block, blocks, or text: "all", "N", "A-B", "a,b,c"
SPELLING = "a block number (15), a range (10-20), a list (3,7,11) or all"
_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")


def parse_layers(text: str) -> list[int] | None:
    """The blocks text names, in its order; None for all. HsviewerError when it names none."""
    text = text.strip().lower()
    if text == "all":
        return None
    layers: list[int] = []
    for part in text.split(","):
        part = part.strip()
        span = _RANGE.fullmatch(part)
        if span:
            first, last = int(span[1]), int(span[2])
            if first > last:
                raise HsviewerError(f"The layer range {part} runs backwards: write it low-high, e.g. {last}-{first}.")
            layers += range(first, last + 1)
        elif part.isdigit():
            layers.append(int(part))
        else:
            raise HsviewerError(f"Layers are {SPELLING}; got {text!r}.")
    return layers


def choose_layers(layers: LayerChoice, n_layers: int) -> list[int]:
    """The blocks asked for, each once, in order, every one a block of the model's n_layers."""
    if isinstance(layers, str):
        parsed = parse_layers(layers)
        chosen: list[Any] = list(range(n_layers)) if parsed is None else parsed
    elif isinstance(layers, Sequence):
        chosen = list(layers)
    else:
        chosen = [layers]  # one block, checked below as the list's are
    if not chosen:
        raise HsviewerError(f"No layer chosen: give {SPELLING}.")
    found = [_whole(layer) for layer in chosen]
    for layer, number in zip(chosen, found, strict=True):
        if number is None or not 0 <= number < n_layers:
            raise HsviewerError(f"Layer must be a whole number from 0 to {n_layers - 1}; got {layer!r}.")
    return sorted({number for number in found if number is not None})


def _whole(value: Any) -> int | None:
    """An int (numpy's too) as itself; anything else, a bool or a float among them, None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None
