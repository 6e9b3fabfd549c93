"""The massive-activation intervention as the runs library, comparisons, the command line and the app see it."""

from __future__ import annotations

from typing import Any

import numpy as np

from hsviewer.core.analyses.checks import (
    DamagedRun,
    check_depth,
    check_fields,
    check_layer_index,
    is_int,
    is_number,
    show,
)
from hsviewer.core.analyses.intervene.results import InterventionResult, LayerIntervention
from hsviewer.core.analyses.kind import AnalysisKind, Points, Rows, count
from hsviewer.core.choices import VALUES
from hsviewer.core.errors import HsviewerError

FIELDS = (
    "layer",
    "entries",
    "largest_ratio",
    "median",
    "loss",
    "loss_change",
    "kl_divergence",
    "hidden_diff_norm",
    "logit_diff_norm",
)
CONTROL_FIELDS = ("random_loss", "random_kl")
# A comparison's metric -> the layer's key.
LAYER_KEYS = {"loss_change": "loss_change", "kl": "kl_divergence", "hidden_diff": "hidden_diff_norm"}
LAYER_KEYS["logit_diff"] = "logit_diff_norm"


def rows(result: InterventionResult) -> Rows:
    """One row per block, with the clean loss, the random control's columns where it ran, and the
    (token:dimension) positions set (the first of them; `entries` counts them all)."""
    control = list(CONTROL_FIELDS) if result.control else []
    table: Rows = [[*FIELDS, "clean_loss", *control, "positions"]]
    for layer in result.layers:
        where = " ".join(f"{t}:{d}" for t, d in layer.positions)
        values = [getattr(layer, name) for name in (*FIELDS, *control)]
        table.append([*values[: len(FIELDS)], result.clean_loss, *values[len(FIELDS) :], where])
    return table


def setting(data: dict[str, Any]) -> str:
    """'mean, ratio 100', with ', random control' where it ran; read before the run is checked."""
    ratio = data.get("ratio")
    parts = [str(data.get("value", "?")), f"ratio {ratio:g}" if is_number(ratio) else "ratio ?"]
    if data.get("control"):
        parts.append(f"{data['control']} control")
    return ", ".join(parts)


def title(data: dict[str, Any]) -> str:
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        return ""
    if len(layers) == 1 and isinstance(layers[0], dict):
        return f" layer {layers[0].get('layer', '?')}"
    return f" {count(len(layers), 'layer')}"


def points(data: dict[str, Any], hidden_size: int | None, metric: str, name: str) -> Points:
    if metric not in LAYER_KEYS:
        raise HsviewerError(f"{name} is an intervention: it has {', '.join(LAYER_KEYS)} per layer, not {metric}.")
    layers = data["layers"]
    return Points(
        layers=np.array([r["layer"] for r in layers], dtype=int),
        values=np.asarray([r[LAYER_KEYS[metric]] for r in layers], dtype=float),
    )


def summary(data: dict[str, Any]) -> str:
    """The per-layer table, as text, saying where the ratio found nothing."""
    control = bool(data.get("control"))
    lines = [
        f"{data['model']}: {len(data['tokens'])} tokens, clean loss {data['clean_loss']:.4f}; entries over "
        f"{data['ratio']:g}x the median |activation| set to {_value_words(data['value'])}",
        f"{'layer':>5} {'entries':>7} {'largest':>9} {'loss':>8} {'change':>8} {'KL':>8} {'hs diff':>10}"
        + (f" {'rand loss':>9} {'rand KL':>8}" if control else ""),
    ]
    for r in data["layers"]:
        largest = "inf" if r["largest_ratio"] is None else f"{r['largest_ratio']:.0f}x"
        line = (
            f"{r['layer']:>5} {r['entries']:>7} {largest:>9} {r['loss']:>8.4f} {r['loss_change']:>+8.4f} "
            f"{r['kl_divergence']:>8.4f} {r['hidden_diff_norm']:>10.2f}"
        )
        if control:
            line += f" {_number(r.get('random_loss')):>9} {_number(r.get('random_kl')):>8}"
        lines.append(line)
    empty = [r["layer"] for r in data["layers"] if r["entries"] == 0]
    if empty:
        where = "any chosen layer" if len(empty) == len(data["layers"]) else f"layer(s) {', '.join(map(str, empty))}"
        ratio = f"{data['ratio']:g}x the median"
        lines.append(f"No entry exceeds {ratio} at {where}: nothing changed there, the loss is the clean one.")
    if data.get("cancelled"):
        lines.append("(cancelled: the layers above are all that ran)")
    return "\n".join(lines)


def _value_words(value: str) -> str:
    return "their column's mean over the other tokens" if value == "mean" else "zero"


def _number(x: Any) -> str:
    return f"{x:.4f}" if is_number(x) else "-"


def check_intervene(data: Any, where: str = "its result") -> None:
    """An intervention's fields (and its layers') have the types InterventionResult and LayerIntervention declare."""
    check_fields(InterventionResult, data, where)
    check_depth(data, where)
    if data["value"] not in VALUES:
        raise DamagedRun(f"{where}'s value is {show(data['value'])}, not one of {', '.join(VALUES)}")
    layers = data.get("layers")
    if not isinstance(layers, list):
        raise DamagedRun(f"{where} has no list of layers")
    for i, layer in enumerate(layers):
        at = f"{where}'s layer {i + 1}"
        check_fields(LayerIntervention, layer, at)
        check_layer_index(layer["layer"], data["n_layers"], at)
        pairs = layer["positions"]
        if not isinstance(pairs, list) or not all(_is_pair(p) for p in pairs):
            raise DamagedRun(f"{at}'s positions are {show(pairs)}, not a list of (token, dimension) pairs")


def _is_pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(is_int(x) and x >= 0 for x in value)


INTERVENE = AnalysisKind(
    name="intervene",
    result=InterventionResult,
    table=rows,
    setting=setting,
    title=title,
    plain_keys=frozenset({"layers", "n_layers", "clean_loss", "tokens", "ratio", "value"}),
    curves=points,
    summary=summary,
    check=check_intervene,
)
