"""What a massive-activation intervention gives: its results and events, and the collector that
builds the one from the other. Free of torch, so the GUI thread can use them without importing it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from hsviewer.core import fields


@dataclass(kw_only=True)
class LayerIntervention:
    """One block's massive entries set, and what changed from it on."""

    layer: int
    entries: int  # how many entries were set
    positions: list[list[int]]  # (token, dimension) of the first of them (entries.POSITIONS_KEPT)
    median: float  # of |H| over the whole matrix
    largest_ratio: float | None  # the largest |H| over the median; None when the median is 0 and the largest is not
    loss: float
    loss_change: float  # loss minus the clean loss
    kl_divergence: float
    hidden_diff_norm: float  # Frobenius norm of the change at the block
    logit_diff_norm: float
    notes: list[str] = field(default_factory=list)
    random_loss: float | None = None  # the random control's, where it ran
    random_kl: float | None = None


@dataclass(kw_only=True)
class InterventionResult:
    """The chosen blocks, each with its massive activations set, one at a time, on one text."""

    SCHEMA: ClassVar[int] = 1
    model: str
    tokens: list[str]
    n_layers: int
    ratio: float
    value: str  # "mean" or "zero"
    clean_loss: float
    layers: list[LayerIntervention] = field(default_factory=list)
    control: str | None = None  # "random", or None
    seed: int = 0
    warnings: list[str] = field(default_factory=list)
    cancelled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "intervene", **fields.to_dict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InterventionResult:
        return fields.from_dict(cls, data)


@dataclass(frozen=True, kw_only=True)
class InterventionStarted:
    """The clean pass is done: the tokens and clean loss are known, the layers follow."""

    run: InterventionResult  # without layers: they come as LayerIntervened events
    layers: list[int]  # the blocks it will run at, in order


@dataclass(frozen=True, kw_only=True)
class LayerIntervened:
    """One block's massive entries set and the rest of the model run."""

    done: int
    total: int
    result: LayerIntervention

    @property
    def message(self) -> str:
        return f"Intervention: layer {self.result.layer} done ({self.result.entries} entries set)"


class InterventionCollector:
    """Builds the InterventionResult from the events; what a consumer that stops early keeps."""

    def __init__(self) -> None:
        self.result: InterventionResult | None = None

    def add(self, event: object) -> None:
        if isinstance(event, InterventionStarted):
            self.result = replace(event.run, layers=[])
        elif isinstance(event, LayerIntervened) and self.result is not None:
            self.result.layers.append(event.result)

    def cancelled(self) -> InterventionResult | None:
        """The result so far, marked cancelled; None before the clean pass ended."""
        if self.result is not None:
            self.result.cancelled = True
        return self.result
