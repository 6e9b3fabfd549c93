"""Centering, SVD and low-rank reconstruction of a matrix (numpy and torch alike).

Every function accepts a 2-D numpy array or torch tensor and returns the same kind,
so the same code serves the image tab (numpy, float64) and hooks inside a forward
pass (torch, on the model's device).

torch is imported only where a tensor is handled: the GUI thread imports this module to
build its tabs, and it never waits for torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeGuard, TypeVar

import numpy as np

from hsviewer.core.choices import CENTERINGS
from hsviewer.core.errors import HsviewerError

if TYPE_CHECKING:
    import torch


# A matrix (or vector) of either kind; Matrix: the same kind in and out.
Array: TypeAlias = "np.ndarray | torch.Tensor"
Matrix = TypeVar("Matrix", np.ndarray, "torch.Tensor")


def is_whole(value: Any) -> TypeGuard[float]:  # Any: it checks user input of any type
    """A whole number (an int, or a float or numpy number without a fraction); never a bool or a string.

    True tells a type checker the value is a real number (float, which admits int), so
    callers can compare it and take int() of it.
    """
    if value is None or isinstance(value, (bool, str, bytes)):
        return False
    try:
        return math.isfinite(float(value)) and int(value) == value
    except (TypeError, ValueError, OverflowError):
        return False


def check_threshold(threshold: Any) -> float:  # Any: it checks user input of any type
    """A percent-variance threshold must lie in (0, 100]."""
    try:
        value = math.nan if isinstance(threshold, (bool, str, bytes)) else float(threshold)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= 100:
        raise HsviewerError(f"Threshold must be a percentage in (0, 100]; got {threshold!r}.")
    return value


def cumulative_percent(s: Array | Sequence[float]) -> np.ndarray:
    """Cumulative percent of variance (s**2) explained by the first 1..n components."""
    s2 = np.asarray(_to_numpy(s), dtype=np.float64) ** 2
    total = s2.sum()
    if total <= 0:
        return np.zeros_like(s2)
    return 100.0 * np.cumsum(s2) / total


def components_for_threshold(s: Array, threshold: float) -> int:
    """Smallest k whose cumulative variance reaches the threshold.

    The reference notebook takes the first index whose cumulative percent exceeds
    the threshold as k, which keeps one component too few.
    """
    threshold = check_threshold(threshold)
    cum = cumulative_percent(s)
    if cum.size == 0 or cum[-1] <= 0:
        _raise_no_variance()
    # Rounding can leave cum[-1] a hair under 100: a tolerance keeps 100% reachable.
    k = int(np.searchsorted(cum, threshold - 1e-9 * 100, side="left")) + 1
    return min(k, numerical_rank(s))


def numerical_rank(s: Array, shape: tuple[int, ...] | None = None) -> int:
    """Number of singular values above numpy's matrix_rank tolerance (for the dtype they were computed in)."""
    single = str(getattr(s, "dtype", "")).endswith(("float32", "float16"))  # numpy or torch
    values = np.asarray(_to_numpy(s), dtype=np.float64)
    if values.size == 0 or values[0] <= 0:
        return 0
    n = max(shape) if shape else values.size
    tol = values[0] * n * np.finfo(np.float32 if single else np.float64).eps
    return int((values > tol).sum())


def _raise_no_variance() -> None:
    raise HsviewerError(
        "The matrix has no variance left after centering (for example a one-token text "
        "with double centering): there is nothing to reduce."
    )


def check_components(k: int, rank: int) -> int:
    """A fixed k must lie between 1 and the matrix's rank."""
    if rank < 1:
        _raise_no_variance()
    if not is_whole(k) or not 1 <= int(k) <= rank:
        raise HsviewerError(f"Components must be a whole number from 1 to the rank ({rank}); got {k!r}.")
    return int(k)


def choose_components(s: Array, threshold: float | None, components: int | None) -> int:
    """k from either a percent threshold or a fixed count (exactly one must be given)."""
    if components is not None:
        return check_components(components, numerical_rank(s))
    return components_for_threshold(s, 95.0 if threshold is None else threshold)


@dataclass
class Centered(Generic[Matrix]):
    """A centred matrix and what was removed, so reconstruction can add it back."""

    data: Matrix
    offset: Matrix  # broadcastable to data; added back after reconstruction

    def restore(self, x: Matrix) -> Matrix:
        return x + self.offset


def check_centering(centering: str) -> str:
    if centering not in CENTERINGS:
        raise HsviewerError(f"Centering must be one of {', '.join(CENTERINGS)}; got {centering!r}.")
    return centering


def center(x: Matrix, centering: str = "double") -> Centered[Matrix]:
    """Remove row and column means (double), column means (PCA) or nothing."""
    check_centering(centering)
    if centering == "none":
        return Centered(x, 0.0 * x[:1, :1])
    col = x.mean(0)[None, :]  # indexing keeps the dimension in numpy and torch alike
    if centering == "column":
        return Centered(x - col, col)
    row = x.mean(1)[:, None]
    grand = x.mean()
    offset = col + row - grand
    return Centered(x - offset, offset)


def svd(x: Matrix) -> tuple[Matrix, Matrix, Matrix]:
    """Thin SVD: U (m x r), s (r), Vh (r x n) with r = min(m, n)."""
    if isinstance(x, np.ndarray):
        return np.linalg.svd(x, full_matrices=False)
    return _gram_svd(x)


def _gram_svd(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD of a torch matrix from the eigenvectors of its smaller Gram matrix, in float64.

    A hidden state is tokens x dimensions with one side much shorter: the eigenproblem
    of the short side's Gram matrix is several times faster than LAPACK's SVD, which
    matters in a sweep that decomposes one matrix per layer. Float64 keeps the squared
    singular values exact well below any threshold's resolution; U @ U.T @ x still
    reconstructs x at full rank because the eigenvectors form a complete basis.
    """
    import torch

    a = x.double()
    wide = a.shape[0] <= a.shape[1]
    short = a if wide else a.T
    eigenvalues, vectors = torch.linalg.eigh(short @ short.T)
    s = eigenvalues.flip(0).clamp_min(0).sqrt()
    vectors = vectors.flip(1)
    # other side: vectors.T @ short = diag(s) @ (other factor); zero s leaves those rows unscaled
    other = (vectors.T @ short) / torch.where(s > 0, s, 1)[:, None]
    u, vh = (vectors, other) if wide else (other.T, vectors.T)
    return u.to(x.dtype), s.to(x.dtype), vh.to(x.dtype)


def reconstruct(u: Matrix, s: Matrix, vh: Matrix, k: int) -> Matrix:
    """Rank-k reconstruction without forming the full Sigma matrix."""
    return (u[:, :k] * s[:k]) @ vh[:k]


def _to_numpy(x: Array | Sequence[float]) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):
        return x.detach().to("cpu").double().numpy()
    return np.asarray(x)
