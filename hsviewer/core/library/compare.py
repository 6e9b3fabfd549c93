"""Several runs' per-layer curves on one axis, relative depth = block / (blocks - 1), so models
of different depths line up: 0 is the first block, 1 the last.

Differences are against the first run, the reference: at each point of another run, its value
minus the reference's, the reference interpolated linearly in relative depth (NaN outside the
depths the reference covers, as a cancelled sweep leaves it). A kind is comparable when its
AnalysisKind has curves. Free of torch: the GUI thread draws comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hsviewer.core.analyses.kind import Points
from hsviewer.core.analyses.registry import COMPARABLE
from hsviewer.core.choices import METRICS
from hsviewer.core.errors import HsviewerError
from hsviewer.core.library.store import Run


@dataclass(kw_only=True)
class Curve:
    """One run's curve on relative depth, and its difference from the reference's."""

    label: str
    run_id: str
    kind: str
    model: str
    n_layers: int
    points: Points
    depth: np.ndarray
    difference: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        p = self.points
        return {
            "label": self.label,
            "id": self.run_id,
            "kind": self.kind,
            "model": self.model,
            "n_layers": self.n_layers,
            "layers": p.layers.tolist(),
            "relative_depth": _plain(self.depth),
            "values": _plain(p.values),
            "ci_low": None if p.low is None else _plain(p.low),
            "ci_high": None if p.high is None else _plain(p.high),
            "difference": _plain(self.difference),
        }


@dataclass(kw_only=True)
class Comparison:
    """The runs' curves of one metric; the first is the reference of the differences."""

    metric: str
    curves: list[Curve]

    @property
    def title(self) -> str:
        return METRICS[self.metric]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "title": self.title,
            "reference": self.curves[0].label,
            "runs": [c.to_dict() for c in self.curves],
        }

    def rows(self) -> list[list[Any]]:
        """The CSV table: one row per run and layer."""
        header = ["run", "id", "model", "n_layers", "layer", "relative_depth", self.metric, "ci_low", "ci_high"]
        rows: list[list[Any]] = [[*header, f"difference_from_{self.curves[0].label}"]]
        for c in self.curves:
            p = c.points
            for i, layer in enumerate(p.layers):
                band = ["", ""] if p.low is None or p.high is None else [_cell(p.low[i]), _cell(p.high[i])]
                point = [int(layer), float(c.depth[i]), _cell(p.values[i]), *band, _cell(c.difference[i])]
                rows.append([c.label, c.run_id, c.model, c.n_layers, *point])
        return rows


def relative_depth(layers: np.ndarray, n_layers: int) -> np.ndarray:
    """block / (blocks - 1): 0 the first block, 1 the last (0 for a one-block model)."""
    return np.asarray(layers, dtype=float) / max(n_layers - 1, 1)


def compare(runs: Sequence[Run], metric: str = "loss_change") -> Comparison:
    """The runs' curves of `metric` on relative depth, and their differences from the first run."""
    if metric not in METRICS:
        raise HsviewerError(f"Metric must be one of {', '.join(METRICS)}; got {metric!r}.")
    if len(runs) < 2:
        raise HsviewerError("A comparison needs two runs or more.")
    labels = _labels(runs)
    curves = []
    for run, label in zip(runs, labels, strict=True):
        kind = COMPARABLE.get(run.info.kind)
        if kind is None or kind.curves is None:
            raise HsviewerError(
                f"{run.info.name} is a {run.info.kind} run: comparisons take per-layer runs ({', '.join(COMPARABLE)})."
            )
        points = kind.curves(run.data, run.hidden_size(), metric, run.info.name)
        n_layers = int(run.data["n_layers"])
        depth = relative_depth(points.layers, n_layers)
        curves.append(
            Curve(
                label=label,
                run_id=run.info.id,
                kind=run.info.kind,
                model=run.info.model,
                n_layers=n_layers,
                points=points,
                depth=depth,
                difference=np.zeros_like(depth),
            )
        )
    reference = curves[0]
    order = np.argsort(reference.depth)
    for c in curves[1:]:
        base = np.interp(c.depth, reference.depth[order], reference.points.values[order], left=np.nan, right=np.nan)
        c.difference = c.points.values - base
    return Comparison(metric=metric, curves=curves)


def _labels(runs: Sequence[Run]) -> list[str]:
    """The runs' names, with the id added where two share one."""
    names = [r.info.name for r in runs]
    return [n if names.count(n) == 1 else f"{n} ({r.info.id})" for n, r in zip(names, runs, strict=True)]


def _cell(x: float) -> float | str:
    return "" if math.isnan(x) else float(x)


def _plain(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(x) else float(x) for x in values]
