"""Measures of a hidden state that do not hinge on a variance threshold.

The participation ratio and the effective rank (Roy and Vetterli 2007) read the whole
spectrum of the centred matrix, so they need no SVD of their own; the massive-activation
ratio reads the raw (uncentred) hidden state, where a few huge entries, mostly on the
first token, dominate any decomposition (Sun et al. 2024). The geometry measures (geometry.py)
join them: anisotropy from the same spectrum; TwoNN dimension, prompt entropy and linearity from
the raw token vectors. numpy only, no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hsviewer.core import fields
from hsviewer.core.linalg.geometry import anisotropy, linearity, prompt_entropy, twonn_dimension

# The optional measures, absent (None) from runs saved before them and where a matrix cannot say.
MASSIVE_ONSET_RATIO = 100.0  # a largest |activation| this many medians counts as massive (Sun et al. 2024)
GEOMETRY = ("anisotropy", "twonn_dimension", "prompt_entropy", "prompt_entropy_normalised", "linearity")


def participation_ratio(s: np.ndarray) -> float:
    """(sum s_i^2)^2 / sum s_i^4: 1 for a rank-1 matrix, n for n equal singular values; 0 with no variance."""
    s2 = np.asarray(s, dtype=np.float64) ** 2
    denominator = float((s2**2).sum())
    return float(s2.sum() ** 2 / denominator) if denominator > 0 else 0.0


def effective_rank(s: np.ndarray) -> float:
    """exp of the entropy of p_i = s_i / sum s_j (0 log 0 = 0): 1 for rank 1, n for n equal values; 0 with none."""
    values = np.asarray(s, dtype=np.float64)
    total = float(values.sum())
    if total <= 0:
        return 0.0
    p = values[values > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def finite_or_none(value: Any) -> float | None:
    """A number as JSON can hold it: None for none, NaN or infinity."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def infinite_if_none(value: Any) -> float:
    """A ratio as finite_or_none wrote it: null is infinity (a zero median under a nonzero largest)."""
    return float("inf") if value is None else float(value)


FINITE = {fields.ENCODE: finite_or_none, fields.DECODE: finite_or_none}  # JSON has no NaN nor infinity


@dataclass(frozen=True, kw_only=True)
class MassiveActivation:
    """The largest |activation| of a hidden state against its median |activation|, and where it sits."""

    ratio: float = field(metadata={fields.ENCODE: finite_or_none, fields.DECODE: infinite_if_none})  # inf: null in JSON
    token: int  # row (token position)
    dimension: int  # column
    value: float  # the activation itself, signed
    token_text: str | None = field(default=None, metadata={fields.OMIT_NONE: True})

    def to_dict(self) -> dict[str, Any]:
        return fields.to_dict(self)


def massive_activation(hidden: np.ndarray, tokens: list[str] | None = None) -> MassiveActivation:
    """The hidden state's (tokens x dims) largest |entry| over the median |entry|."""
    magnitude = np.abs(np.asarray(hidden, dtype=np.float64))
    token, dimension = np.unravel_index(int(magnitude.argmax()), magnitude.shape)
    largest, median = float(magnitude[token, dimension]), float(np.median(magnitude))
    ratio = largest / median if median > 0 else (float("inf") if largest > 0 else 0.0)
    text = tokens[token] if tokens is not None and token < len(tokens) else None
    return MassiveActivation(
        ratio=ratio, token=int(token), dimension=int(dimension), value=float(hidden[token, dimension]), token_text=text
    )


def massive_onset(ratios: list[tuple[int, float]]) -> dict[str, Any]:
    """The first layer (of (layer, massive-activation ratio) pairs, block 0 first) whose largest |activation|
    is over MASSIVE_ONSET_RATIO times its median, or None, with that threshold: where massive activations start."""
    layer = next((number for number, ratio in ratios if ratio > MASSIVE_ONSET_RATIO), None)
    return {"layer": layer, "threshold": MASSIVE_ONSET_RATIO}


@dataclass(frozen=True, kw_only=True)
class SpectrumMeasures:
    """The threshold-free measures of one layer's clean hidden state.

    participation_ratio, effective_rank and anisotropy read the spectrum of the matrix the run's
    reduction decomposes (its centering; without the first token under exclude_first); the rest
    read the raw hidden state, all tokens: massive_activation, twonn_dimension, prompt_entropy
    (and _normalised), and linearity, the step from this layer to the next (None for the last).
    """

    participation_ratio: float
    effective_rank: float
    massive_activation: MassiveActivation
    anisotropy: float | None = field(default=None, metadata=FINITE)
    twonn_dimension: float | None = field(default=None, metadata=FINITE)  # None under geometry.TWONN_MIN_POINTS tokens
    prompt_entropy: float | None = field(default=None, metadata=FINITE)
    prompt_entropy_normalised: float | None = field(default=None, metadata=FINITE)
    linearity: float | None = field(default=None, metadata=FINITE)

    def to_dict(self) -> dict[str, Any]:
        return fields.to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpectrumMeasures:
        """The measures to_dict wrote among a result's keys; a run saved before the geometry has None for it."""
        return fields.from_dict(cls, data)


def measure(
    s: np.ndarray, hidden: np.ndarray, tokens: list[str] | None = None, following: np.ndarray | None = None
) -> SpectrumMeasures:
    """Every measure from the singular values already computed, the raw hidden state and the next
    layer's raw hidden state over the same tokens (None for the last layer: no linearity)."""
    entropy = prompt_entropy(hidden)
    return SpectrumMeasures(
        participation_ratio=participation_ratio(s),
        effective_rank=effective_rank(s),
        massive_activation=massive_activation(hidden, tokens),
        anisotropy=anisotropy(s),
        twonn_dimension=twonn_dimension(hidden),
        prompt_entropy=entropy.value,
        prompt_entropy_normalised=entropy.normalised,
        linearity=linearity(hidden, following) if following is not None else None,
    )
