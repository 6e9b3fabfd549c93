"""What a layer sweep gives: its results and its events, and the collector that builds the one
from the other. Free of torch, so the GUI thread can use them without importing it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from hsviewer.core import fields
from hsviewer.core.choices import METHODS
from hsviewer.core.events import Finished, Progress
from hsviewer.core.linalg.measures import SpectrumMeasures, massive_onset
from hsviewer.core.linalg.reduction import Reduction


def measured(data: dict[str, Any]) -> SpectrumMeasures | None:
    """A layer's measures among its keys; None for a layer saved before them."""
    return SpectrumMeasures.from_dict(data) if "participation_ratio" in data else None


@dataclass(kw_only=True)
class LayerResult:
    """One reduced block: the components kept and what changed from it on."""

    layer: int
    components: int
    variance_kept: float
    hidden_diff_norm: float
    logit_diff_norm: float
    loss: float
    kl_divergence: float
    token_diff_norms: list[float]
    # One per grid setting; the sweep's grid table holds them (SweepResult.grid_dict).
    grid_components: list[int] = field(default_factory=list, metadata={fields.SKIP: True})
    grid_loss: list[float] = field(default_factory=list, metadata={fields.SKIP: True})
    # Of the clean hidden state (its spectrum and raw values), its keys among the layer's; absent from older runs.
    measures: SpectrumMeasures | None = field(default=None, metadata={fields.FLATTEN: True, fields.DECODE: measured})
    # Under exclude_massive, the positions left out of the basis.
    excluded_tokens: list[int] | None = field(default=None, metadata={fields.OMIT_NONE: True})

    def to_dict(self) -> dict[str, Any]:
        return fields.to_dict(self)

    def basis_tokens(self, run: SweepResult) -> int:
        """How many tokens this layer's basis was built from: the run's, less those its reduction left out."""
        return len(run.tokens) - run.reduction.exclude_first - len(self.excluded_tokens or [])

    @classmethod
    def from_dict(cls, data: dict[str, Any], grid_components: list[int], grid_loss: list[float]) -> LayerResult:
        """The layer to_dict describes; its grid values live in the sweep's grid table."""
        return fields.from_dict(cls, {**data, "grid_components": grid_components, "grid_loss": grid_loss})


@dataclass(kw_only=True)
class SweepResult:
    """Every block reduced in turn on one text (and, under controls, the control runs)."""

    SCHEMA: ClassVar[int] = 1
    model: str
    tokens: list[str]
    n_layers: int
    reduction: Reduction
    clean_loss: float
    layers: list[LayerResult] = field(default_factory=list)
    grid: list[Reduction] = field(default_factory=list)
    controls: dict[str, SweepResult] = field(default_factory=dict)
    method: str = "prefix"
    warnings: list[str] = field(default_factory=list)
    cancelled: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {
            "kind": "sweep",
            **fields.schema_of(type(self)),
            "model": self.model,
            "tokens": self.tokens,
            "n_layers": self.n_layers,
            "threshold": self.reduction.threshold,
            "fixed_components": self.reduction.fixed_components,
            "centering": self.reduction.centering,
            "clean_loss": self.clean_loss,
            "layers": [r.to_dict() for r in self.layers],
            "method": self.method,
            "cancelled": self.cancelled,
            "warnings": self.warnings,
            **self.reduction.options(),
            "massive_activation_onset": self.massive_activation_onset(),
        }
        if self.grid:
            out["grid"] = self.grid_dict()
        if self.controls:
            out["controls"] = {name: c.to_dict() for name, c in self.controls.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepResult:
        """The sweep to_dict describes, controls and grid included."""
        fields.check_schema(cls, data)
        reduction = Reduction.from_dict(data)
        grid = data.get("grid") or {}
        n = len(data["layers"])
        components = grid.get("components") or [[] for _ in range(n)]
        losses = grid.get("loss") or [[] for _ in range(n)]
        settings = zip(grid.get("thresholds", []), grid.get("fixed_components", []), strict=True)
        return cls(
            model=data["model"],
            tokens=list(data["tokens"]),
            n_layers=int(data["n_layers"]),
            reduction=reduction,
            clean_loss=float(data["clean_loss"]),
            layers=[
                LayerResult.from_dict(layer, c, loss)
                for layer, c, loss in zip(data["layers"], components, losses, strict=True)
            ],
            grid=[replace(reduction, threshold=t, fixed_components=k) for t, k in settings],
            controls={name: cls.from_dict(run) for name, run in (data.get("controls") or {}).items()},
            method=data.get("method", METHODS[0]),
            warnings=list(data.get("warnings", [])),
            cancelled=bool(data.get("cancelled", False)),
        )

    def massive_activation_onset(self) -> dict[str, Any]:
        """The first of the layers done whose massive-activation ratio passes the threshold (measures.massive_onset)."""
        return massive_onset([(r.layer, r.measures.massive_activation.ratio) for r in self.layers if r.measures])

    def events(self, hidden_size: int) -> list[RunStarted | LayerDone]:
        """The events a live sweep gave for this result, so that a saved one redraws the same way."""
        runs = [("", self), *self.controls.items()]
        labels = [label for label, _ in runs]
        total = sum(len(run.layers) for _, run in runs)
        out: list[RunStarted | LayerDone] = []
        done = 0
        for label, run in runs:
            out.append(
                RunStarted(label=label, run=replace(run, layers=[], controls={}), runs=labels, hidden_size=hidden_size)
            )
            for layer in run.layers:
                done += 1
                out.append(LayerDone(label=label, done=done, total=total, result=layer))
        return out

    def grid_dict(self) -> dict[str, Any]:
        return {
            "settings": [g.label() for g in self.grid],
            "thresholds": [g.threshold for g in self.grid],
            "fixed_components": [g.fixed_components for g in self.grid],
            "components": [r.grid_components for r in self.layers],
            "loss": [r.grid_loss for r in self.layers],
            "loss_change": [[x - self.clean_loss for x in r.grid_loss] for r in self.layers],
        }


@dataclass(frozen=True, kw_only=True)
class RunStarted:
    """A run's clean pass is done: its tokens and clean loss are known, its layers follow."""

    label: str  # "" for the plain sweep, else the control's name
    run: SweepResult  # without layers: they come as LayerDone events
    runs: list[str]  # every run's label, in the order they run
    hidden_size: int


@dataclass(frozen=True, kw_only=True)
class LayerDone:
    """One layer of one run reduced and measured."""

    label: str
    done: int  # layer runs done so far, over all runs
    total: int
    result: LayerResult

    @property
    def message(self) -> str:
        run = f" ({self.label})" if self.label else ""
        return f"Sweep{run}: layer {self.result.layer} done"


SweepEvent = Progress | RunStarted | LayerDone | Finished[SweepResult]


class SweepCollector:
    """Builds the SweepResult from a sweep's events; what a consumer that stops early keeps."""

    def __init__(self) -> None:
        self.result: SweepResult | None = None  # the plain run, holding the controls' runs
        self.runs: dict[str, SweepResult] = {}  # every run by label, "" the plain one

    def add(self, event: SweepEvent) -> None:
        if isinstance(event, RunStarted):
            run = replace(event.run, layers=[], controls={})
            self.runs[event.label] = run
            if event.label == "":
                self.result = run
            elif self.result is not None:
                self.result.controls[event.label] = run
        elif isinstance(event, LayerDone):
            self.runs[event.label].layers.append(event.result)

    def cancelled(self) -> SweepResult | None:
        """The result so far, marked cancelled; None before the first run started."""
        if self.result is not None:
            self.result.cancelled = True
        return self.result
