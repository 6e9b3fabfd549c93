"""The corpus sweep as the runs library, comparisons, the command line and the app see it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from hsviewer.core.analyses.checks import DamagedRun, check_depth, check_fields, check_layer_index, is_number, show
from hsviewer.core.analyses.corpus.results import CorpusResult, aggregate_rows
from hsviewer.core.analyses.kind import AnalysisKind, Points, sweep_label
from hsviewer.core.analyses.sweep.kind import check_sweep
from hsviewer.core.choices import MEASURE_METRICS
from hsviewer.core.errors import HsviewerError

# A comparison's metric -> the aggregate's measure (each with _mean and _ci95 per layer).
AGGREGATE_KEYS = {"components": "components", "percent_rank": "components_percent", "loss_change": "loss_change"}
AGGREGATE_KEYS["kl"] = "kl"
AGGREGATE_KEYS.update({name: name for name in MEASURE_METRICS})


def setting(data: dict[str, Any]) -> str:
    """The reduction, the number of texts and what else it holds: '95%, 3 texts, 1 control'."""
    return sweep_label(data, texts=True)


def title(data: dict[str, Any]) -> str:
    return f" {Path(str(data['source'])).name}" if data.get("source") else ""


def points(data: dict[str, Any], hidden_size: int | None, metric: str, name: str) -> Points:
    """A corpus run's means over its texts, with their 95% confidence intervals."""
    if metric not in AGGREGATE_KEYS:
        raise HsviewerError(f"{name} is a corpus run: it has {', '.join(AGGREGATE_KEYS)} per layer, not {metric}.")
    key = AGGREGATE_KEYS[metric]
    layers = data["aggregate"]["layers"]
    # A measure a run saved before it lacks, or no text has at a layer, is NaN there (null in JSON).
    means = [r.get(f"{key}_mean") for r in layers]
    values = np.asarray(means, dtype=float)
    low, high = zip(*(_band(mean, r.get(f"{key}_ci95")) for mean, r in zip(means, layers, strict=True)), strict=True)
    return Points(
        layers=np.array([r["layer"] for r in layers], dtype=int),
        values=values,
        low=np.asarray(low, dtype=float),
        high=np.asarray(high, dtype=float),
    )


def _band(mean: float | None, ci: Any) -> tuple[float, float]:
    """A 95% interval given as [low, high] or as the half-width around the mean."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return float(ci[0]), float(ci[1])
    if isinstance(ci, (int, float)) and mean is not None:
        return mean - ci, mean + ci
    return math.nan, math.nan


def summary(data: dict[str, Any]) -> str:
    """Per layer: the mean and 95% interval over the texts of components, loss change and KL."""
    n = len(data["texts"])
    lines = [f"{data['model']}: {n} text{'s' * (n != 1)} swept, mean [95% interval] over texts"]
    for note in data["notes"]:
        lines.append(f"  {note}")
    runs = {"": data["aggregate"], **data["aggregate"].get("controls", {})}
    for run, agg in runs.items():
        if run:
            lines.append(f"control {run}:")
        lines.append(f"{'layer':>5} {'components':>22} {'% of rank':>20} {'loss change':>26} {'KL':>26}")
        for r in agg["layers"]:
            lines.append(
                f"{r['layer']:>5} {_interval(r, 'components', '.1f'):>22} "
                f"{_interval(r, 'components_percent', '.1f'):>20} "
                f"{_interval(r, 'loss_change', '.4f'):>26} {_interval(r, 'kl', '.4f'):>26}"
            )
    if data.get("cancelled"):
        lines.append("(cancelled: the texts above are all that ran)")
    return "\n".join(lines)


def _interval(row: dict[str, Any], name: str, spec: str) -> str:
    mean, ci = row[f"{name}_mean"], row[f"{name}_ci95"]
    return f"{mean:{spec}}" + (f" [{ci[0]:{spec}}, {ci[1]:{spec}}]" if ci is not None else "")


AGGREGATED = ("components", "components_percent", "loss_change", "kl")  # what show and compare read


def check_corpus(data: Any, where: str = "its result") -> None:
    """A corpus run's fields, its texts' (as sweeps) and its aggregate's, as show and compare read them."""
    check_fields(CorpusResult, data, where)
    check_depth(data, where)
    for key in ("texts", "notes"):
        if not isinstance(data.get(key), list):
            raise DamagedRun(f"{where}'s {key} are missing or not a list")
    for i, text in enumerate(data["texts"]):
        check_sweep(text, f"{where}'s text {i + 1}")
    aggregate = data.get("aggregate")
    if not isinstance(aggregate, dict):
        raise DamagedRun(f"{where}'s aggregate is missing or not a table")
    controls = aggregate.get("controls", {})
    if not isinstance(controls, dict):
        raise DamagedRun(f"{where}'s aggregate controls are {show(controls)}, not a table")
    for name, part in {"": aggregate, **controls}.items():
        rows = part.get("layers") if isinstance(part, dict) else None
        if not isinstance(rows, list):
            raise DamagedRun(f"{where}'s aggregate{' ' + name if name else ''} has no list of layers")
        for i, row in enumerate(rows):
            _check_aggregate_row(row, data["n_layers"], f"{where}'s aggregate layer {i + 1}")


def _check_aggregate_row(row: Any, n_layers: int, where: str) -> None:
    if not isinstance(row, dict):
        raise DamagedRun(f"{where} is {show(row)}, not a table")
    check_layer_index(row.get("layer"), n_layers, where)
    for name in AGGREGATED:
        mean, ci = row.get(f"{name}_mean"), row.get(f"{name}_ci95")
        if not is_number(mean):
            raise DamagedRun(f"{where}'s {name}_mean is {show(mean)}, not a number")
        if ci is not None and not (isinstance(ci, list) and len(ci) == 2 and all(is_number(x) for x in ci)):
            raise DamagedRun(f"{where}'s {name}_ci95 is {show(ci)}, not a pair of numbers")


CORPUS = AnalysisKind(
    name="corpus",
    result=CorpusResult,
    table=lambda result: aggregate_rows(result.to_dict()),
    setting=setting,
    title=title,
    plain_keys=frozenset({"texts", "aggregate", "n_layers"}),
    curves=points,
    summary=summary,
    check=check_corpus,
)
