"""The image tab's view model: rank-k reconstructions fast enough to follow a slider."""

from __future__ import annotations

from typing import Any

import numpy as np


class LowRankImage:
    """float32 copies of U*s and V^T, so a rank-k reconstruction is one small matrix product.

    Above half the rank the discarded components are subtracted from the image instead,
    so no k costs more than half of a full product.
    """

    def __init__(self, svd: Any) -> None:
        self.image = np.ascontiguousarray(svd.image, dtype=np.float32)
        self._us_t = np.ascontiguousarray((svd.u * svd.s).T, dtype=np.float32)  # r x rows
        self._vh = np.ascontiguousarray(svd.vh, dtype=np.float32)  # r x cols
        self.rank = len(svd.s)

    def reconstruction(self, k: int) -> np.ndarray:
        k = min(max(int(k), 0), self.rank)
        if k <= self.rank // 2:
            return self._us_t[:k].T @ self._vh[:k]
        return self.image - self._us_t[k:].T @ self._vh[k:]
