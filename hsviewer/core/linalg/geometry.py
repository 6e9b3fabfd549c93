"""Geometry of one layer's token vectors: how one-directional, how many-dimensional, how spread, how
linear the step to the next layer is. numpy only, float64 throughout.

Each reads a (tokens x dims) matrix and returns a number, or None where the matrix cannot say (too
few distinct tokens, no variance): the JSON writes null, never NaN.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

TWONN_MIN_POINTS = 20  # distinct tokens TwoNN needs: fewer give a fit of a handful of ratios, not a dimension
TWONN_DISCARD = 0.1  # the fraction of largest ratios left out of the fit (Facco et al.'s heuristic)
CHUNK_BYTES = 32 * 2**20  # one block of squared distances (rows x tokens, float64)


def anisotropy(s: np.ndarray) -> float:
    """s_1^2 / sum s_i^2 of the singular values of the centred matrix: the share of the variance on the
    top direction, 1 for rank 1, 1/n for n equal values; 0 with no variance."""
    power = np.asarray(s, dtype=np.float64) ** 2
    total = float(power.sum())
    return float(power.max()) / total if total > 0 else 0.0


def twonn_dimension(points: np.ndarray) -> float | None:
    """The TwoNN intrinsic dimension (Facco et al. 2017, Sci. Rep. 7:12140) of the rows, as
    scikit-dimension's TwoNN fits it.

    Each point's mu = r2 / r1, its second over its first nearest-neighbour Euclidean distance, is
    Pareto distributed with exponent d on a d-dimensional manifold, so -log(1 - F(mu)) = d log(mu).
    With the N ratios sorted, the i-th (0-based) has F_emp = i / N; the largest 10% are left out, and
    d is the least-squares slope through the origin. A point with a duplicate (r1 = 0) has no ratio
    and is dropped; None comes back when fewer than TWONN_MIN_POINTS (20) points are left. The
    distances are computed a block of rows at a time, so no tokens x tokens matrix exists whole.
    """
    x = np.asarray(points, dtype=np.float64)
    if len(x) < TWONN_MIN_POINTS:
        return None
    r1, r2 = two_nearest(x - x.mean(0))  # centred: the same distances, with less cancellation
    keep = r1 > 0
    mu = np.sort(r2[keep] / r1[keep])
    n = len(mu)
    if n < TWONN_MIN_POINTS:
        return None
    used = int(n * (1 - TWONN_DISCARD))
    log_mu = np.log(mu[:used])
    y = -np.log1p(-np.arange(used) / n)
    denominator = float((log_mu**2).sum())
    return float((log_mu * y).sum()) / denominator if denominator > 0 else None


def two_nearest(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's distances to its nearest and second-nearest other row (at least 3 rows).

    The two are found from |a|^2 + |b|^2 - 2 a.b a block of rows at a time (at most CHUNK_BYTES of
    squared distances, or of differences, at once), then measured again as |a - b|: exact, so that a
    duplicate's distance is 0 and not rounding noise."""
    n, dims = x.shape
    squares = (x * x).sum(1)
    rows = max(1, CHUNK_BYTES // (8 * max(n, 2 * dims)))
    r = np.empty((n, 2))
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        d2 = squares[start:stop, None] + squares[None, :] - 2.0 * (x[start:stop] @ x.T)
        d2[np.arange(stop - start), np.arange(start, stop)] = np.inf  # a point is not its own neighbour
        nearest = np.argpartition(d2, 1, axis=1)[:, :2]
        r[start:stop] = np.linalg.norm(x[start:stop, None, :] - x[nearest], axis=2)
    r.sort(axis=1)
    return r[:, 0], r[:, 1]


class Entropy(NamedTuple):
    value: float  # nats
    normalised: float  # value / log(rank); 0 when the rank is 1 or less


def prompt_entropy(z: np.ndarray) -> Entropy:
    """The matrix-based entropy at alpha = 1 of one prompt (Skean et al. 2025, "Layer by Layer").

    The Gram matrix K = Z Z^T of the uncentred token vectors has eigenvalues s_i^2, the squared
    singular values of Z (one SVD, no Gram formed); with p_i = s_i^2 / sum s_j^2 the entropy is
    -sum p_i log p_i (natural log, 0 log 0 = 0). Normalised, it is divided by log(rank), rank being
    numpy.linalg.matrix_rank's of Z (singular values above max(T, D) * eps * s_1): 1 when the
    variance is spread evenly over every direction Z has, 0 for rank 1 (and for an all-zero Z).
    """
    z = np.asarray(z, dtype=np.float64)
    s = np.linalg.svd(z, compute_uv=False)
    power = s**2
    total = float(power.sum())
    if total <= 0:
        return Entropy(0.0, 0.0)
    p = power[power > 0] / total
    value = float(-(p * np.log(p)).sum())
    rank = int((s > max(z.shape) * np.finfo(np.float64).eps * s.max()).sum())
    return Entropy(value, value / math.log(rank) if rank > 1 else 0.0)


def linearity(x: np.ndarray, y: np.ndarray) -> float | None:
    """How close the next layer's tokens y are to a rotation of this layer's x: the orthogonal
    Procrustes similarity 1 - min_R |XR - Y|_F^2 / 2 = |X^T Y|_* (nuclear norm), in [0, 1].

    X and Y are x and y centred (column means subtracted) and scaled to unit Frobenius norm, as in
    Razzhigaev et al. 2024 ("Your Transformer is Secretly Linear"). Their score allows any linear map
    A, and min_A |XA - Y| is 0 whenever tokens <= dims (X then has a right inverse), so for one prompt
    it is 1 whatever the layers do; an orthogonal R cannot fit noise that way. For T < D the singular
    values of X^T Y are those of the small T x T product Rx Ry^T of the R factors of X^T = Qx Rx and
    Y^T = Qy Ry (Qx, Qy have orthonormal columns): exact, with no D x D matrix. None when either has
    no variance.
    """
    a, b = unit_centred(x), unit_centred(y)
    if a is None or b is None:
        return None
    tall = a.shape[0] >= a.shape[1]
    cross = a.T @ b if tall else r_factor(a.T) @ r_factor(b.T).T
    return float(np.linalg.svd(cross, compute_uv=False).sum())


def r_factor(x: np.ndarray) -> np.ndarray:
    """R of the thin QR of x (columns <= rows), without forming Q."""
    return np.asarray(np.linalg.qr(x, mode="r"))


def unit_centred(x: np.ndarray) -> np.ndarray | None:
    """x minus its column means, over its Frobenius norm; None when that norm is 0."""
    centred = np.asarray(x, dtype=np.float64)
    centred = centred - centred.mean(0)
    norm = float(np.linalg.norm(centred))
    return centred / norm if norm > 0 else None
