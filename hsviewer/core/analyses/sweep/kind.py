"""The layer sweep as the runs library, comparisons, the command line and the app see it."""

from __future__ import annotations

from typing import Any

import numpy as np

from hsviewer.core.analyses.checks import DamagedRun, check_depth, check_fields, check_layer_index, show
from hsviewer.core.analyses.kind import AnalysisKind, Points, Rows, sweep_label
from hsviewer.core.analyses.sweep.results import LayerResult, SweepResult
from hsviewer.core.choices import MEASURE_METRICS
from hsviewer.core.errors import HsviewerError
from hsviewer.core.linalg.measures import GEOMETRY

FIELDS = ("layer", "components", "variance_kept", "hidden_diff_norm", "logit_diff_norm", "loss", "kl_divergence")
# A comparison's metric -> the layer's key, where the layer holds it as it is.
LAYER_KEYS = {
    "components": "components",
    "kl": "kl_divergence",
    "hidden_diff": "hidden_diff_norm",
    "logit_diff": "logit_diff_norm",
    **{name: name for name in MEASURE_METRICS},
}
# The measures' columns, after the existing ones: empty where a layer has none.
MEASURE_COLUMNS = ("participation_ratio", "effective_rank", *GEOMETRY)


def rows(result: SweepResult) -> Rows:
    """One row per run and layer ("main" is the plain sweep), with the run's own clean loss (shuffled
    tokens have theirs) and the grid's losses as extra columns."""
    grid = [f"loss_{g.label()}" for g in result.grid]
    table: Rows = [["run", *FIELDS, "clean_loss", *grid, *MEASURE_COLUMNS]]
    for run, sweep in [("", result), *result.controls.items()]:
        for layer in sweep.layers:
            values = [getattr(layer, name) for name in FIELDS]
            losses = layer.grid_loss if run == "" else []
            padding = [""] * (len(grid) - len(losses))
            table.append([run or "main", *values, sweep.clean_loss, *losses, *padding, *measure_cells(layer)])
    return table


def measure_cells(layer: LayerResult) -> list[Any]:
    """The layer's MEASURE_COLUMNS, "" for a measure it lacks (a run saved before it, a last layer's linearity)."""
    data = layer.measures.to_dict() if layer.measures is not None else {}
    return ["" if data.get(name) is None else data[name] for name in MEASURE_COLUMNS]


def points(data: dict[str, Any], hidden_size: int | None, metric: str, name: str) -> Points:
    layers = data["layers"]
    numbers = np.array([r["layer"] for r in layers], dtype=int)
    if metric == "loss_change":
        values = [r["loss"] - data["clean_loss"] for r in layers]
    elif metric == "percent_rank":
        if hidden_size is None:
            raise HsviewerError(f"{name} does not say its model's hidden size, so its % of rank is unknown.")
        rank = min(len(data["tokens"]), hidden_size)
        values = [100.0 * r["components"] / rank for r in layers]
    else:  # a measure a layer lacks (saved before it; a last layer's linearity) is NaN: no point
        values = [r.get(LAYER_KEYS[metric]) for r in layers]
    return Points(layers=numbers, values=np.asarray(values, dtype=float))


def summary(data: dict[str, Any]) -> str:
    """The per-layer table the notebook plots, as text."""
    lines = [
        f"{data['model']}: {len(data['tokens'])} tokens, clean loss {data['clean_loss']:.4f}",
        f"{'layer':>5} {'comps':>5} {'var %':>7} {'hs diff':>10} {'logit diff':>11} {'loss':>8} {'KL':>8}",
    ]
    for r in data["layers"]:
        lines.append(
            f"{r['layer']:>5} {r['components']:>5} {r['variance_kept']:>7.2f} {r['hidden_diff_norm']:>10.2f} "
            f"{r['logit_diff_norm']:>11.2f} {r['loss']:>8.4f} {r['kl_divergence']:>8.4f}"
        )
    if data.get("cancelled"):
        lines.append("(cancelled: the layers above are all that ran)")
    return "\n".join(lines)


def check_sweep(data: Any, where: str = "its result") -> None:
    """A sweep's fields (and its layers' and controls') have the types SweepResult and LayerResult declare."""
    check_fields(SweepResult, data, where)
    check_depth(data, where)
    layers = data.get("layers")
    if not isinstance(layers, list):
        raise DamagedRun(f"{where} has no list of layers")
    for i, layer in enumerate(layers):
        check_fields(LayerResult, layer, f"{where}'s layer {i + 1}")
        check_layer_index(layer["layer"], data["n_layers"], f"{where}'s layer {i + 1}")
    controls = data.get("controls") or {}
    if not isinstance(controls, dict):
        raise DamagedRun(f"{where}'s controls are {show(controls)}, not a table")
    for name, control in controls.items():
        check_sweep(control, f"{where}'s control {name!r}")


SWEEP = AnalysisKind(
    name="sweep",
    result=SweepResult,
    table=rows,
    setting=sweep_label,
    plain_keys=frozenset({"layers", "n_layers", "clean_loss", "tokens"}),
    curves=points,
    summary=summary,
    check=check_sweep,
)
