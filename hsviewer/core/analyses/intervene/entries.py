"""Which entries of a hidden state are massive, and what they are set to: numpy only, in float64.

Sun et al. 2024 find a few activations, mostly on the first token, thousands of times the median
|activation|; setting them to their mean over the other tokens wrecks the model. An entry is
massive when |H[t, j]| > ratio * median(|H|), the median over the whole matrix as
linalg.measures.massive_activation takes it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

POSITIONS_KEPT = 50  # the (token, dimension) pairs a result lists; the count says how many in all


class Changed(NamedTuple):
    """A hidden state with some entries set, and what was done."""

    hidden: np.ndarray  # float64 (T, D)
    mask: np.ndarray  # bool (T, D): the entries set
    lonely: list[int]  # columns whose every token was set, so no other token has a mean: set to 0


def massive_mask(hidden: np.ndarray, ratio: float) -> tuple[np.ndarray, float]:
    """The entries whose |value| exceeds ratio times the median |value|, and that median."""
    magnitude = np.abs(np.asarray(hidden, dtype=np.float64))
    median = float(np.median(magnitude))
    return magnitude > ratio * median, median


def set_entries(hidden: np.ndarray, mask: np.ndarray, value: str) -> Changed:
    """The entries under mask set to 0 ("zero"), or ("mean") to the mean of their column over the
    tokens whose entry is not set; a column set at every token has no such mean, and gets 0."""
    original = np.asarray(hidden, dtype=np.float64)
    out = original.copy()
    lonely: list[int] = []
    for j in np.flatnonzero(mask.any(axis=0)):
        rows = mask[:, j]
        if value == "zero" or rows.all():
            out[rows, j] = 0.0
            lonely += [int(j)] * (value != "zero")
        else:
            out[rows, j] = original[~rows, j].mean()
    return Changed(out, mask, lonely)


def random_mask(mask: np.ndarray, seed: int, layer: int) -> np.ndarray:
    """As many entries as mask holds, drawn at random from those it does not (the control): seeded by
    (seed, layer), so each layer draws the same entries whatever else runs."""
    free = np.flatnonzero(~mask.ravel())
    count = min(int(mask.sum()), len(free))
    chosen = np.random.default_rng([seed, layer]).choice(free, size=count, replace=False)
    out = np.zeros(mask.size, dtype=bool)
    out[chosen] = True
    return out.reshape(mask.shape)


def positions(mask: np.ndarray, limit: int = POSITIONS_KEPT) -> list[list[int]]:
    """The first `limit` (token, dimension) pairs under mask, token by token."""
    return [[int(t), int(j)] for t, j in np.argwhere(mask)[:limit]]
