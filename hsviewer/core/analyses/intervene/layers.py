"""Which blocks an intervention runs at: one, a list, a range or all, as the command line spells them.

Torch-free, so that the command line checks --layer before it loads anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hsviewer.core.errors import HsviewerError
from hsviewer.core.linalg.lowrank import is_whole

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
        chosen = list(range(n_layers)) if parsed is None else parsed
    elif is_whole(layers):
        chosen = [int(layers)]
    else:
        chosen = list(layers)  # type: ignore[arg-type]
    if not chosen:
        raise HsviewerError(f"No layer chosen: give {SPELLING}.")
    for layer in chosen:
        if not is_whole(layer) or not 0 <= layer < n_layers:
            raise HsviewerError(f"Layer must be a whole number from 0 to {n_layers - 1}; got {layer!r}.")
    return sorted({int(layer) for layer in chosen})
