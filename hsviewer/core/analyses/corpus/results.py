"""What a corpus sweep gives: one sweep per text, their per-layer aggregate, the events, and
the collector that keeps the texts done when the work stops early. Free of torch.

The 95% interval of a mean over n texts is mean +- t(0.975, n - 1) * sd / sqrt(n), sd with
n - 1 in the denominator (Student t). With one text there is no interval: it is None (null).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from hsviewer.core import fields
from hsviewer.core.analyses.sweep.results import LayerResult, SweepEvent, SweepResult
from hsviewer.core.events import Finished, Progress
from hsviewer.core.linalg.measures import GEOMETRY, MASSIVE_ONSET_RATIO
from hsviewer.core.linalg.reduction import Reduction

# t(0.975, df) for df = 1..30; beyond, a Cornish-Fisher expansion around the normal value (error < 1e-4).
T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
Z975 = 1.959964


def t975(df: int) -> float:
    """The two-sided 95% quantile of Student's t with df degrees of freedom."""
    if df < 1:
        raise ValueError("A t quantile needs at least one degree of freedom.")
    if df <= len(T975):
        return T975[df - 1]
    z = Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True, kw_only=True)
class Interval:
    """A mean over texts and its 95% confidence interval (None for one text)."""

    mean: float
    ci95: tuple[float, float] | None

    @classmethod
    def of(cls, values: list[float]) -> Interval:
        x = np.asarray(values, dtype=np.float64)
        mean = float(x.mean())
        if len(x) < 2:
            return cls(mean=mean, ci95=None)
        half = t975(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
        return cls(mean=mean, ci95=(mean - half, mean + half))

    @classmethod
    def of_present(cls, values: list[float | None]) -> tuple[Interval, int]:
        """The interval over the values that are there (None and NaN left out), and how many those are;
        with none, a NaN mean (null in JSON) and no interval."""
        present = [v for v in values if v is not None and math.isfinite(v)]
        return (cls.of(present) if present else cls(mean=math.nan, ci95=None)), len(present)


# The aggregated measures: JSON prefix -> the value of one text's layer, given that text's run.
MEASURES: dict[str, Callable[[LayerResult, SweepResult, int], float]] = {
    "components": lambda r, run, rank: r.components,
    "components_percent": lambda r, run, rank: 100.0 * r.components / rank,
    "variance_kept": lambda r, run, rank: r.variance_kept,
    "loss_change": lambda r, run, rank: r.loss - run.clean_loss,
    "kl": lambda r, run, rank: r.kl_divergence,
    "participation_ratio": lambda r, run, rank: r.measures.participation_ratio if r.measures else math.nan,
    "effective_rank": lambda r, run, rank: r.measures.effective_rank if r.measures else math.nan,
}
# measures.GEOMETRY: None where a text's layer has none (a run saved before them, a last layer's linearity,
# too few tokens for TwoNN); each layer's mean and interval are over the texts that have one, counted in _n.
OPTIONAL = GEOMETRY


@dataclass(frozen=True, kw_only=True)
class LayerAggregate:
    layer: int
    n: int  # texts
    values: dict[str, Interval]  # by MEASURES and OPTIONAL key
    counts: dict[str, int] = field(default_factory=dict)  # the texts behind each OPTIONAL measure's interval

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"layer": self.layer, "n": self.n}
        for name, interval in self.values.items():
            out[f"{name}_mean"] = interval.mean if math.isfinite(interval.mean) else None  # JSON has no NaN
            out[f"{name}_ci95"] = list(interval.ci95) if interval.ci95 is not None else None
            if name in self.counts:
                out[f"{name}_n"] = self.counts[name]
        return out


def rank_of(run: SweepResult, layer: LayerResult, hidden_size: int) -> int:
    """min(T, d) of the matrix the run decomposed at this layer: T the rows its basis was built from
    (without the first N tokens under exclude_first, and the layer's massive ones under exclude_massive)."""
    return max(1, min(layer.basis_tokens(run), hidden_size))


def aggregate(runs: list[SweepResult], hidden_size: int) -> list[LayerAggregate]:
    """Per layer, the mean and interval of every measure over the runs (each text's own clean loss)."""
    if not runs:
        return []
    out = []
    for index in range(min(len(run.layers) for run in runs)):
        rows = [(run, run.layers[index], rank_of(run, run.layers[index], hidden_size)) for run in runs]
        values = {name: Interval.of([value(r, run, rank) for run, r, rank in rows]) for name, value in MEASURES.items()}
        counts = {}
        for name in OPTIONAL:
            values[name], counts[name] = Interval.of_present([optional(r, name) for _, r, _ in rows])
        out.append(LayerAggregate(layer=runs[0].layers[index].layer, n=len(runs), values=values, counts=counts))
    return out


def optional(result: LayerResult, name: str) -> float | None:
    """One of a layer's OPTIONAL measures, None where it has none."""
    return getattr(result.measures, name) if result.measures is not None else None


def onset(runs: list[SweepResult]) -> dict[str, Any]:
    """Each run's massive-activation onset layer (null where none passes the threshold), and the mean and
    interval over the runs that have one."""
    layers = [run.massive_activation_onset()["layer"] for run in runs]
    interval, n = Interval.of_present([float(x) if x is not None else None for x in layers])
    return {
        "layers": layers,
        "threshold": MASSIVE_ONSET_RATIO,
        "n": n,
        "mean": interval.mean if math.isfinite(interval.mean) else None,
        "ci95": list(interval.ci95) if interval.ci95 is not None else None,
    }


@dataclass(kw_only=True)
class CorpusResult:
    """A layer sweep on each text of a corpus, with what the texts share layer by layer."""

    SCHEMA: ClassVar[int] = 1
    model: str
    n_layers: int
    hidden_size: int
    reduction: Reduction
    source: str
    names: list[str] = field(default_factory=list)  # one per text swept
    texts: list[SweepResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # texts left out, and why
    controls: list[str] = field(default_factory=list)
    cancelled: bool = False
    world_size: int = 1  # the processes that swept it (torchrun; hsviewer.core.analyses.corpus.distributed)

    def aggregate(self, control: str = "") -> list[LayerAggregate]:
        """The plain runs' aggregate, or that of one control's runs."""
        return aggregate(self.runs(control), self.hidden_size)

    def runs(self, control: str = "") -> list[SweepResult]:
        """Each text's plain run, or its run of one control (where it has one)."""
        runs = [run.controls.get(control) if control else run for run in self.texts]
        return [run for run in runs if run is not None]

    def departures(self) -> list[float]:
        """Each text's mean |components - the corpus mean| over layers: how far it departs from the rest."""
        means = [a.values["components"].mean for a in self.aggregate()]
        return [
            float(np.mean([abs(r.components - m) for r, m in zip(run.layers, means, strict=False)]))
            for run in self.texts
        ]

    def to_dict(self) -> dict[str, Any]:
        agg: dict[str, Any] = {"layers": [a.to_dict() for a in self.aggregate()]}
        if self.controls:
            agg["controls"] = {
                c: {"layers": [a.to_dict() for a in self.aggregate(c)], "massive_activation_onset": onset(self.runs(c))}
                for c in self.controls
            }
        agg["massive_activation_onset"] = onset(self.texts)
        agg["departures"] = self.departures()  # one per text, in the order of names (names may repeat)
        return {
            "kind": "corpus",
            **fields.schema_of(type(self)),
            "model": self.model,
            "n_layers": self.n_layers,
            "hidden_size": self.hidden_size,
            "threshold": self.reduction.threshold,
            "fixed_components": self.reduction.fixed_components,
            "centering": self.reduction.centering,
            **self.reduction.options(),
            "source": self.source,
            "controls": self.controls,
            "names": self.names,
            "texts": [{"name": name, **run.to_dict()} for name, run in zip(self.names, self.texts, strict=True)],
            "aggregate": agg,
            "notes": self.notes,
            "cancelled": self.cancelled,
            "world_size": self.world_size,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CorpusResult:
        """The corpus run to_dict describes; its aggregate and departures are computed again from the texts."""
        fields.check_schema(cls, data)
        texts = [SweepResult.from_dict({k: v for k, v in text.items() if k != "name"}) for text in data["texts"]]
        return cls(
            model=data["model"],
            n_layers=int(data["n_layers"]),
            hidden_size=int(data["hidden_size"]),
            reduction=Reduction.from_dict(data),
            source=str(data.get("source", "")),
            names=[str(name) for name in data["names"]],
            texts=texts,
            notes=list(data.get("notes", [])),
            controls=list(data.get("controls", data["aggregate"].get("controls", {}))),
            cancelled=bool(data.get("cancelled", False)),
            world_size=int(data.get("world_size", 1)),
        )


@dataclass(frozen=True, kw_only=True)
class TextStarted:
    """A text's sweep begins; its own sweep events follow, then TextDone or TextSkipped."""

    index: int  # 0-based
    total: int
    name: str

    @property
    def message(self) -> str:
        return f"Text {self.index + 1}/{self.total}: {self.name}"

    @property
    def done(self) -> int:  # a Step: the texts done before this one
        return self.index


@dataclass(frozen=True, kw_only=True)
class TextDone:
    index: int
    total: int
    name: str
    result: SweepResult


@dataclass(frozen=True, kw_only=True)
class TextSkipped:
    index: int
    name: str
    reason: str

    @property
    def note(self) -> str:
        return f"{self.name}: skipped, {self.reason}"


@dataclass(frozen=True, kw_only=True)
class CorpusStarted:
    """The corpus sweep's empty result: what every text shares, before the first text."""

    run: CorpusResult


CorpusEvent = CorpusStarted | TextStarted | TextDone | TextSkipped | SweepEvent | Progress | Finished[CorpusResult]


class CorpusCollector:
    """Builds the CorpusResult from the events; what a consumer that stops early keeps (whole texts only)."""

    def __init__(self) -> None:
        self.result: CorpusResult | None = None

    def add(self, event: CorpusEvent) -> None:
        if isinstance(event, CorpusStarted):  # a copy: each collector (the sweep's own, a consumer's) keeps its own
            run = event.run
            self.result = replace(run, names=list(run.names), texts=list(run.texts), notes=list(run.notes))
        elif self.result is None:
            return
        elif isinstance(event, TextDone):
            self.result.names.append(event.name)
            self.result.texts.append(event.result)
        elif isinstance(event, TextSkipped):
            self.result.notes.append(event.note)

    def cancelled(self) -> CorpusResult | None:
        """The texts done so far, marked cancelled; None before the corpus sweep started."""
        if self.result is not None:
            self.result.cancelled = True
        return self.result


AGGREGATE_COLUMNS = ("components", "components_percent", "variance_kept", "loss_change", "kl", *OPTIONAL)


def aggregate_rows(data: dict[str, Any]) -> list[list[Any]]:
    """The corpus aggregate as CSV rows: run ("main" or a control), layer, n, then mean, low, high of each measure."""
    header = ["run", "layer", "n"] + [f"{c}_{part}" for c in AGGREGATE_COLUMNS for part in ("mean", "low", "high")]
    rows: list[list[Any]] = [header]
    runs = {"main": data["aggregate"], **data["aggregate"].get("controls", {})}
    for run, agg in runs.items():
        for layer in agg["layers"]:
            values = []
            for c in AGGREGATE_COLUMNS:
                low, high = layer.get(f"{c}_ci95") or (None, None)  # a run saved before OPTIONAL: empty cells
                values += [layer.get(f"{c}_mean"), low, high]
            rows.append([run, layer["layer"], layer["n"], *values])
    return rows
