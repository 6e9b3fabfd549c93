"""The one-layer reduction as the runs library, the command line and the app see it."""

from __future__ import annotations

from typing import Any

from hsviewer.core.analyses.checks import DamagedRun, check_depth, check_fields, check_layer_index
from hsviewer.core.analyses.kind import AnalysisKind, Rows, reduction_setting
from hsviewer.core.analyses.reduce.results import HiddenReduction


def rows(result: HiddenReduction) -> Rows:
    """One row per layer: the norm of the difference with the reduction applied at result.layer."""
    table: Rows = [["layer", "diff_norm", "reduced_layer"]]
    table += [[i, float(n), int(i == result.layer)] for i, n in enumerate(result.diff_norms)]
    return table


def summary(data: dict[str, Any]) -> str:
    return (
        f"Layer {data['layer']}: {data['components']} components keep {data['variance_kept']:.2f}% of the variance; "
        f"correlation {data['correlation']:.5f}; loss {data['clean_loss']:.4f} -> {data['loss']:.4f}"
    )


def check_reduce(data: Any, where: str = "its result") -> None:
    """A reduction's fields have the types HiddenReduction declares (its matrices: the library's check_arrays)."""
    check_fields(HiddenReduction, data, where)
    check_depth(data, where)
    check_layer_index(data["layer"], data["n_layers"], where)
    for key in ("singular_values", "diff_norms"):
        if not isinstance(data.get(key), list):
            raise DamagedRun(f"{where}'s {key} are missing or not a list")


REDUCE = AnalysisKind(
    name="reduce",
    result=HiddenReduction,
    table=rows,
    setting=reduction_setting,
    title=lambda data: f" layer {data['layer']}" if "layer" in data else "",
    arrays=True,
    summary=summary,
    check=check_reduce,
)
