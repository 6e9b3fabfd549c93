"""Export of results: JSON with the CLI's schema (the core's to_dict) and flat CSV tables."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from hsviewer.core.errors import HsviewerError

SWEEP_FIELDS = ("layer", "components", "variance_kept", "hidden_diff_norm", "logit_diff_norm", "loss", "kl_divergence")


def image_rows(svd: Any) -> list[list[Any]]:
    """One row per component: its singular value and the cumulative percent of variance."""
    rows: list[list[Any]] = [["component", "singular_value", "cumulative_percent"]]
    rows += [[i + 1, float(s), float(c)] for i, (s, c) in enumerate(zip(svd.s, svd.cumulative_percent, strict=True))]
    return rows


def hidden_rows(result: Any) -> list[list[Any]]:
    """One row per layer: the norm of the difference with the reduction applied at result.layer."""
    rows: list[list[Any]] = [["layer", "diff_norm", "reduced_layer"]]
    rows += [[i, float(n), int(i == result.layer)] for i, n in enumerate(result.diff_norms)]
    return rows


def sweep_rows(result: Any) -> list[list[Any]]:
    """One row per run and layer (run '' is the plain sweep), with the grid's losses as extra columns."""
    grid = [f"loss_{g.label()}" for g in result.grid]
    rows: list[list[Any]] = [["run", *SWEEP_FIELDS, *grid]]
    for run, sweep in [("", result), *result.controls.items()]:
        for layer in sweep.layers:
            values = [getattr(layer, name) for name in SWEEP_FIELDS]
            losses = layer.grid_loss if run == "" else []
            rows.append([run or "main", *values, *losses, *[""] * (len(grid) - len(losses))])
    return rows


def write_data(path: str | Path, result: Any, rows: list[list[Any]]) -> None:
    """Write result.to_dict() as .json, or the rows as .csv, by the path's suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            path.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
        elif suffix == ".csv":
            with path.open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(rows)
        else:
            raise HsviewerError(f"Data is exported as .json or .csv, not {suffix or 'a file without a suffix'}.")
    except OSError as e:
        raise HsviewerError(f"Could not write {path}: {e.strerror or e}.") from None
