"""What a hidden-state reduction gives. Free of torch, so the GUI thread can redraw a saved one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from hsviewer.core import fields
from hsviewer.core.linalg import lowrank
from hsviewer.core.linalg.measures import SpectrumMeasures
from hsviewer.core.linalg.reduction import Reduction

ARRAYS = ("original", "reconstruction", "u", "s", "vh", "diff_norms")  # kept beside the JSON, as .npz
# Their shapes, by what the JSON says: tokens, rank (its singular values), blocks (its diff_norms), the
# model's hidden size, and rows (the tokens the basis was built from: one fewer under exclude_first).
ARRAY_SHAPES = {
    "original": ("tokens", "hidden"),
    "reconstruction": ("tokens", "hidden"),
    "u": ("rows", "rank"),
    "s": ("rank",),
    "vh": ("rank", "hidden"),
    "diff_norms": ("blocks",),
}


@dataclass(kw_only=True)
class HiddenReduction:
    """One layer's hidden state, its reduction, and what the reduction does downstream."""

    SCHEMA: ClassVar[int] = 1
    model: str
    tokens: list[str]
    layer: int
    n_layers: int
    reduction: Reduction
    original: np.ndarray  # tokens x dims
    reconstruction: np.ndarray
    u: np.ndarray
    s: np.ndarray
    vh: np.ndarray
    components: int
    variance_kept: float
    diff_norms: np.ndarray  # per block, with the reduction applied at `layer`
    clean_loss: float
    loss: float
    logit_diff_norm: float
    kl_divergence: float
    correlation: float  # of original and reconstruction values
    rank_original: int
    rank_reconstruction: int
    measures: SpectrumMeasures  # threshold-free: participation ratio, effective rank, massive activation
    warnings: list[str] = field(default_factory=list)

    @property
    def difference(self) -> np.ndarray:
        return self.original - self.reconstruction

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "reduce",
            **fields.schema_of(type(self)),
            "model": self.model,
            "tokens": self.tokens,
            "layer": self.layer,
            "n_layers": self.n_layers,
            "centering": self.reduction.centering,
            "threshold": self.reduction.threshold,
            "components": self.components,
            "variance_kept": self.variance_kept,
            "singular_values": self.s.tolist(),
            "cumulative_percent": lowrank.cumulative_percent(self.s).tolist(),
            "correlation": self.correlation,
            "rank_original": self.rank_original,
            "rank_reconstruction": self.rank_reconstruction,
            "diff_norms": self.diff_norms.tolist(),
            "clean_loss": self.clean_loss,
            "loss": self.loss,
            "logit_diff_norm": self.logit_diff_norm,
            "kl_divergence": self.kl_divergence,
            **self.measures.to_dict(),
            "warnings": self.warnings,
            "fixed_components": self.reduction.fixed_components,
            **self.reduction.options(),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """The matrices to_dict leaves out (and, exactly, the vectors it holds as lists)."""
        return {name: np.asarray(getattr(self, name)) for name in ARRAYS}

    @classmethod
    def from_dict(cls, data: dict[str, Any], arrays: dict[str, np.ndarray]) -> HiddenReduction:
        """The result to_dict and arrays() describe."""
        fields.check_schema(cls, data)
        return cls(
            model=data["model"],
            tokens=list(data["tokens"]),
            layer=int(data["layer"]),
            n_layers=int(data["n_layers"]),
            reduction=Reduction.from_dict(data),
            components=int(data["components"]),
            variance_kept=float(data["variance_kept"]),
            clean_loss=float(data["clean_loss"]),
            loss=float(data["loss"]),
            logit_diff_norm=float(data["logit_diff_norm"]),
            kl_divergence=float(data["kl_divergence"]),
            correlation=float(data["correlation"]),
            rank_original=int(data["rank_original"]),
            rank_reconstruction=int(data["rank_reconstruction"]),
            measures=SpectrumMeasures.from_dict(data),
            warnings=list(data.get("warnings", [])),
            **{name: np.asarray(arrays[name]) for name in ARRAYS},
        )
