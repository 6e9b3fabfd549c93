"""One hidden-state matrix (tokens x dimensions): centre, SVD, keep k components, add the means back.

Like lowrank, this module serves numpy arrays and torch tensors alike, and imports torch
only for a tensor: the GUI thread imports it (for Reduction), and it never waits for torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Generic

import numpy as np

from hsviewer.core.errors import HsviewerError
from hsviewer.core.linalg import lowrank
from hsviewer.core.linalg.lowrank import Matrix

BASES = ("top", "random")


@dataclass(frozen=True)
class Reduction:
    """How to reduce: k from a threshold or fixed, the centering, and the control variants.

    exclude_first: the first token often carries massive activations that dominate the
    SVD; this builds the basis from the other rows and leaves the first row unchanged.
    basis="random": a random subspace of the same rank in place of the top-k one.
    """

    threshold: float | None = 95.0
    fixed_components: int | None = None  # k itself, in place of a threshold
    centering: str = "double"
    exclude_first: bool = False
    basis: str = "top"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.fixed_components is None:
            lowrank.check_threshold(self.threshold)
        elif not lowrank.is_whole(self.fixed_components) or self.fixed_components < 1:
            raise HsviewerError(f"Components must be a whole number of at least 1; got {self.fixed_components!r}.")
        lowrank.check_centering(self.centering)
        if self.basis not in BASES:
            raise HsviewerError(f"Basis must be one of {', '.join(BASES)}; got {self.basis!r}.")

    def with_k(self, components: int) -> Reduction:
        return replace(self, fixed_components=components, threshold=None)

    def label(self) -> str:
        return f"k = {self.fixed_components}" if self.fixed_components is not None else f"{self.threshold:g}%"

    def options(self) -> dict[str, Any]:
        """The fields a result's to_dict leaves out of its threshold, k and centering, so that
        from_dict rebuilds the same reduction."""
        return {"exclude_first": self.exclude_first, "basis": self.basis, "seed": self.seed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reduction:
        """The reduction a result's to_dict describes (a file saved before the options: their defaults)."""
        return cls(
            threshold=data.get("threshold"),
            fixed_components=data.get("fixed_components"),
            centering=data.get("centering", "double"),
            exclude_first=bool(data.get("exclude_first", False)),
            basis=data.get("basis", "top"),
            seed=int(data.get("seed", 0)),
        )


@dataclass
class Decomposition(Generic[Matrix]):
    """The SVD of one centred hidden state, kept so several k can reuse it."""

    hidden: Matrix  # tokens x dims, as given
    centered: lowrank.Centered[Matrix]
    u: Matrix
    s: Matrix
    vh: Matrix
    rows: slice  # the rows the basis was built from

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
    rows = slice(1, None) if reduction.exclude_first else slice(None)
    part = hidden[rows]
    if part.shape[0] < 1:
        raise HsviewerError("Excluding the first token leaves no tokens to reduce.")
    centered = lowrank.center(part, reduction.centering)
    u, s, vh = lowrank.svd(centered.data)
    return Decomposition(hidden, centered, u, s, vh, rows)


def reduce_matrix(hidden: Matrix, reduction: Reduction) -> tuple[Matrix, int, float]:
    """Reduced hidden state, components kept and percent of variance kept."""
    dec = decompose(hidden, reduction)
    k = dec.choose_components(reduction)
    out, kept = dec.reconstruct(k, reduction)
    return out, k, kept


def _random_basis(x: Matrix, k: int, seed: int) -> Matrix:
    """An orthonormal basis of a random k-dimensional subspace of the columns' space."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((x.shape[1], k)))
    if isinstance(x, np.ndarray):
        return q.astype(x.dtype)
    import torch

    return torch.as_tensor(q, dtype=x.dtype, device=x.device)
