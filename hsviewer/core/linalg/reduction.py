"""One hidden-state matrix (tokens x dimensions): centre, SVD, keep k components, add the means back.

Like lowrank, this module serves numpy arrays and torch tensors alike, and imports torch
only for a tensor: the GUI thread imports it (for Reduction), and it never waits for torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Generic

import numpy as np

from hsviewer.core import fields
from hsviewer.core.errors import HsviewerError
from hsviewer.core.linalg import lowrank
from hsviewer.core.linalg.lowrank import Matrix

BASES = ("top", "random")


@dataclass(frozen=True)
class Reduction:
    """How to reduce: k from a threshold or fixed, the centering, and the control variants.

    exclude_first: the first tokens often carry massive activations that dominate the SVD
    (StreamingLLM keeps four such "sink" tokens); this builds the basis from the rows after
    the first N and leaves those N rows unchanged. exclude_massive: the same for every row
    whose largest |activation| passes this many times the median |activation| of the whole
    hidden state, wherever it sits. basis="random": a random subspace of the same rank in
    place of the top-k one.
    """

    threshold: float | None = 95.0
    fixed_components: int | None = None  # k itself, in place of a threshold
    centering: str = "double"
    exclude_first: int = 0  # the first N tokens left out of the basis; 0 none (True, as saved before counts: 1)
    basis: str = "top"
    seed: int = 0
    exclude_massive: float | None = None  # the ratio to the median past which a token is left out; None: none are

    def __post_init__(self) -> None:
        if self.fixed_components is None:
            lowrank.check_threshold(self.threshold)
        elif not lowrank.is_whole(self.fixed_components) or self.fixed_components < 1:
            raise HsviewerError(f"Components must be a whole number of at least 1; got {self.fixed_components!r}.")
        lowrank.check_centering(self.centering)
        if self.basis not in BASES:
            raise HsviewerError(f"Basis must be one of {', '.join(BASES)}; got {self.basis!r}.")
        object.__setattr__(self, "exclude_first", _count(self.exclude_first))  # frozen: one value however given
        if self.exclude_massive is not None:
            object.__setattr__(self, "exclude_massive", _ratio(self.exclude_massive))

    def with_k(self, components: int) -> Reduction:
        return replace(self, fixed_components=components, threshold=None)

    def label(self) -> str:
        return f"k = {self.fixed_components}" if self.fixed_components is not None else f"{self.threshold:g}%"

    def options(self) -> dict[str, Any]:
        """The fields a result's to_dict leaves out of its threshold, k and centering, so that
        from_dict rebuilds the same reduction. exclude_first is written true or false for 1 or 0, as
        before counts existed, so that those runs' files read as they did; exclude_massive only when set."""
        first: int | bool = self.exclude_first if self.exclude_first > 1 else bool(self.exclude_first)
        out: dict[str, Any] = {"exclude_first": first, "basis": self.basis, "seed": self.seed}
        if self.exclude_massive is not None:
            out["exclude_massive"] = self.exclude_massive
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reduction:
        """The reduction among a result's keys (a file saved before the options: their defaults)."""
        return fields.from_dict(cls, data)


@dataclass
class Decomposition(Generic[Matrix]):
    """The SVD of one centred hidden state, kept so several k can reuse it."""

    hidden: Matrix  # tokens x dims, as given
    centered: lowrank.Centered[Matrix]
    u: Matrix
    s: Matrix
    vh: Matrix
    rows: slice | list[int]  # the rows the basis was built from: a slice, or their positions when some are massive
    excluded: list[int] = field(default_factory=list)  # the massive rows left out (after the first N), unchanged

    def choose_components(self, reduction: Reduction) -> int:
        return lowrank.choose_components(self.s, reduction.threshold, reduction.fixed_components)

    def reconstruct(self, k: int, reduction: Reduction) -> tuple[Matrix, float]:
        """The rank-k hidden state (means added back) and the percent of variance it keeps."""
        x = self.centered.data
        if reduction.basis == "random":
            q = _random_basis(x, k, reduction.seed)
            part = (x @ q) @ q.T
            kept = float(100 * (part**2).sum() / max(float((x**2).sum()), 1e-30))
        else:
            part = lowrank.reconstruct(self.u, self.s, self.vh, k)
            kept = float(lowrank.cumulative_percent(self.s)[k - 1])
        out = self.hidden.copy() if isinstance(self.hidden, np.ndarray) else self.hidden.clone()
        out[self.rows] = self.centered.restore(part)
        return out, kept


def decompose(hidden: Matrix, reduction: Reduction) -> Decomposition[Matrix]:
    """Centre and SVD the rows the reduction works on."""
    rows, excluded = basis_rows(hidden, reduction)
    centered = lowrank.center(hidden[rows], reduction.centering)
    u, s, vh = lowrank.svd(centered.data)
    return Decomposition(hidden, centered, u, s, vh, rows, excluded)


def check_tokens(tokens: int, reduction: Reduction) -> None:
    """Tokens enough to leave some after the first N; HsviewerError naming both otherwise."""
    first = reduction.exclude_first
    if tokens - first < 1:
        what = "the first token" if first == 1 else f"the first {first} tokens"
        raise HsviewerError(f"Excluding {what} leaves no tokens to reduce: the text has {tokens} token(s).")


def basis_rows(hidden: Matrix, reduction: Reduction) -> tuple[slice | list[int], list[int]]:
    """The rows the basis is built from, and the massive rows left out after the first N.

    A slice when no massive row is left out, so that those reductions index as they always did.
    """
    check_tokens(hidden.shape[0], reduction)
    first, ratio = reduction.exclude_first, reduction.exclude_massive
    massive = [] if ratio is None else [row for row in massive_rows(hidden, ratio) if row >= first]
    if not massive:
        return slice(first, None), []
    kept = sorted(set(range(first, hidden.shape[0])) - set(massive))
    if not kept:
        raise HsviewerError(
            f"Every token to reduce ({len(massive)}) has an activation over {ratio:g}x the median "
            "|activation|: none are left to build the basis from."
        )
    return kept, massive


def massive_rows(hidden: Matrix, ratio: float) -> list[int]:
    """The rows (tokens) whose largest |activation| passes ratio times the median |activation| of the
    whole matrix: the median that measures.massive_activation divides by, in float64."""
    raw = hidden if isinstance(hidden, np.ndarray) else hidden.detach().to("cpu").double().numpy()
    magnitude = np.abs(np.asarray(raw, dtype=np.float64))
    median = float(np.median(magnitude))
    return [int(row) for row in np.flatnonzero(magnitude.max(axis=1) > ratio * median)]


def reduce_matrix(hidden: Matrix, reduction: Reduction) -> tuple[Matrix, int, float]:
    """Reduced hidden state, components kept and percent of variance kept."""
    dec = decompose(hidden, reduction)
    k = dec.choose_components(reduction)
    out, kept = dec.reconstruct(k, reduction)
    return out, k, kept


def _count(value: Any) -> int:
    """exclude_first's count: a whole number, 0 or more; true and false (as runs saved before counts say) 1 and 0."""
    first = int(value) if isinstance(value, bool) else value
    if not lowrank.is_whole(first) or first < 0:
        raise HsviewerError(f"Exclude first takes a whole number of tokens, 0 or more; got {value!r}.")
    return int(first)


def _ratio(value: Any) -> float:
    """exclude_massive's ratio: a finite number above 1 (1 or less would leave out nearly every row)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 1):
        raise HsviewerError(f"Exclude massive takes a ratio to the median above 1; got {value!r}.")
    return float(value)


def _random_basis(x: Matrix, k: int, seed: int) -> Matrix:
    """An orthonormal basis of a random k-dimensional subspace of the columns' space."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((x.shape[1], k)))
    if isinstance(x, np.ndarray):
        return q.astype(x.dtype)
    import torch

    return torch.as_tensor(q, dtype=x.dtype, device=x.device)
