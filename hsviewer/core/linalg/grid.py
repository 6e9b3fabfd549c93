"""The sweep's grid of extra settings, from one line of text: "80, 90, 99" (or k values with fixed k).

One parser for the command line's --grid and the sweep tab's grid field. Values are
separated by commas or semicolons; a threshold may end in "%". Empty text is no grid;
text without a single value (",,,") is a mistake, not an empty grid.
"""

from __future__ import annotations

import math
from dataclasses import replace

from hsviewer.core.errors import HsviewerError
from hsviewer.core.linalg import lowrank
from hsviewer.core.linalg.reduction import Reduction


def parse_grid(spec: str, reduction: Reduction) -> list[Reduction]:
    """One Reduction per value: thresholds, or k when reduction has fixed components.

    Each setting is `reduction` with its threshold (or components) replaced, so the
    centering and the control options carry over.
    """
    spec = spec or ""
    if not spec.strip():
        return []
    parts = [p.strip() for p in spec.replace(";", ",").split(",")]
    parts = [p for p in parts if p]
    if not parts:
        raise HsviewerError(f"The grid holds no values; got {spec!r}. Give numbers separated by commas, like 80,90,99.")
    if reduction.fixed_components is not None:
        return [replace(reduction, fixed_components=_whole(p, spec)) for p in parts]
    return [
        replace(reduction, threshold=lowrank.check_threshold(_number(p.removesuffix("%").strip(), spec))) for p in parts
    ]


def _number(text: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise HsviewerError(
            f"Grid values must be numbers separated by commas, like 80,90,95,99; got {spec!r}."
        ) from None


def _whole(text: str, spec: str) -> int:
    """A k value: a whole number of at least 1 (2 or 2.0, never 1.7 or 80%)."""
    value = math.nan if text.endswith("%") else _number(text, spec)
    if not lowrank.is_whole(value) or value < 1:
        raise HsviewerError(
            f"With a fixed number of components the grid holds k values, whole numbers of at least 1; "
            f"got {text!r} in {spec!r}."
        )
    return int(value)
