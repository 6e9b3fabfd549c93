"""Independent numpy versions of the geometry measures, each by another road than hsviewer's:
TwoNN from every distance measured as |a - b| and a least-squares solve, the entropy from the eigenvalues
of the whole Gram matrix, the linearity from the Procrustes rotation itself and its residual."""

from __future__ import annotations

import numpy as np


def twonn(x: np.ndarray, discard: float = 0.1) -> float | None:
    """Facco et al.'s TwoNN as scikit-dimension fits it; points with a duplicate (r1 = 0) dropped."""
    x = np.asarray(x, dtype=np.float64)
    ratios = []
    for i in range(len(x)):
        d = np.linalg.norm(x - x[i], axis=1)
        d[i] = np.inf
        r1, r2 = np.sort(d)[:2]
        if r1 > 0:
            ratios.append(r2 / r1)
    n = len(ratios)
    if n < 20:
        return None
    used = int(n * (1 - discard))
    mu = np.sort(ratios)[:used]
    f = np.arange(used) / n
    slope, *_ = np.linalg.lstsq(np.log(mu)[:, None], -np.log(1 - f), rcond=None)
    return float(slope[0])


def entropy(z: np.ndarray) -> tuple[float, float]:
    """-sum p log p of the eigenvalues of K = Z Z^T over its trace, and that over log(matrix_rank(Z))."""
    z = np.asarray(z, dtype=np.float64)
    k = z @ z.T
    eigenvalues = np.clip(np.linalg.eigvalsh(k), 0.0, None)
    p = eigenvalues / np.trace(k)
    p = p[p > 0]
    h = float(-(p * np.log(p)).sum())
    rank = np.linalg.matrix_rank(z)
    return h, (h / np.log(rank) if rank > 1 else 0.0)


def procrustes(x: np.ndarray, y: np.ndarray) -> float:
    """1 - |X R - Y|_F^2 / 2 with R the best rotation (the SVD of X^T Y), X and Y centred, unit norm."""
    a = np.asarray(x, dtype=np.float64) - np.asarray(x, dtype=np.float64).mean(0)
    b = np.asarray(y, dtype=np.float64) - np.asarray(y, dtype=np.float64).mean(0)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    u, _, vt = np.linalg.svd(a.T @ b)
    rotation = u @ vt
    return float(1 - np.linalg.norm(a @ rotation - b) ** 2 / 2)


def double_centred_anisotropy(x: np.ndarray, first: int = 0) -> float:
    """s_1^2 / sum s^2 of the double-centred rows from `first` on."""
    x = np.asarray(x, dtype=np.float64)[first:]
    centred = x - x.mean(0, keepdims=True) - x.mean(1, keepdims=True) + x.mean()
    s = np.linalg.svd(centred, compute_uv=False)
    return float(s[0] ** 2 / (s**2).sum())
