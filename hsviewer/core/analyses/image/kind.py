"""The image analysis as the app exports it; an image's SVD is not kept in the runs library."""

from __future__ import annotations

from typing import Any

from hsviewer.core.analyses.image.run import ImageSVD
from hsviewer.core.analyses.kind import AnalysisKind, Rows


def rows(svd: Any) -> Rows:
    """One row per component: its singular value and the cumulative percent of variance."""
    table: Rows = [["component", "singular_value", "cumulative_percent"]]
    table += [[i + 1, float(s), float(c)] for i, (s, c) in enumerate(zip(svd.s, svd.cumulative_percent, strict=True))]
    return table


IMAGE = AnalysisKind(name="image", result=ImageSVD, table=rows, setting=lambda data: "", saved=False)
