"""What a reproduction gives: per text and block, the clean-pass geometry three papers plot over depth,
its mean and 95% interval over texts, the events, and the collector that keeps the texts done when the
work stops early. Free of torch.

The massive-activation ratio spans decades from block to block and text to text, so its aggregate is
the geometric mean: the mean and Student-t interval of log10(ratio), raised back to ratios. Every other
measure is aggregated as it is. A text without a value at a block (too few tokens for TwoNN, a zero
median) is left out of that block's mean, and each mean says how many texts it has (NAME_n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from hsviewer.core import fields
from hsviewer.core.analyses.corpus.results import Interval, TextSkipped, TextStarted
from hsviewer.core.events import Finished

MEASURES = (
    "anisotropy",  # s1^2 / sum s^2 of the double-centred block output, every token
    "anisotropy_without_first",  # the same, the basis built from rows[1:]
    "massive_ratio",  # max |a| / median |a| of the raw block output
    "twonn_dimension",  # TwoNN intrinsic dimension of the tokens as written
    "twonn_dimension_shuffled",  # ... and of the same tokens in a seeded random order
    "prompt_entropy_normalised",  # matrix entropy of the raw tokens over log(rank)
)
GEOMETRIC = frozenset({"massive_ratio"})  # aggregated in log10, shown as ratios
DIFFERENCE = "twonn_shuffled_minus_plain"  # per text, then aggregated: a paired comparison


@dataclass(frozen=True, kw_only=True)
class LayerGeometry:
    """One block's measures on one text; None where the hidden state cannot say."""

    layer: int
    anisotropy: float | None = None
    anisotropy_without_first: float | None = None
    massive_ratio: float | None = None
    twonn_dimension: float | None = None
    twonn_dimension_shuffled: float | None = None
    prompt_entropy_normalised: float | None = None

    def value(self, name: str) -> float | None:
        """A MEASURES value, or DIFFERENCE: shuffled minus plain TwoNN where both exist."""
        if name == DIFFERENCE:
            plain, mixed = self.twonn_dimension, self.twonn_dimension_shuffled
            return None if plain is None or mixed is None else mixed - plain
        value: float | None = getattr(self, name)
        return value


@dataclass(frozen=True, kw_only=True)
class TextGeometry:
    name: str
    tokens: int
    layers: list[LayerGeometry]


@dataclass(frozen=True, kw_only=True)
class LayerAggregate:
    """One block's means over the texts that have each measure, and how many those are."""

    layer: int
    depth: float  # block / (blocks - 1): 0 first, 1 last, as comparisons line models up
    values: dict[str, Interval]
    counts: dict[str, int]

    def mean(self, name: str) -> float | None:
        value = self.values[name].mean
        return value if math.isfinite(value) else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"layer": self.layer, "depth": self.depth}
        for name, interval in self.values.items():
            out[f"{name}_mean"] = self.mean(name)
            out[f"{name}_ci95"] = list(interval.ci95) if interval.ci95 is not None else None
            out[f"{name}_n"] = self.counts[name]
        return out


def depth(layer: int, n_layers: int) -> float:
    return layer / (n_layers - 1) if n_layers > 1 else 0.0


def aggregate(texts: list[TextGeometry], n_layers: int) -> list[LayerAggregate]:
    """Per block, each measure's mean and 95% interval over the texts (GEOMETRIC ones in log10)."""
    out = []
    for index in range(min((len(t.layers) for t in texts), default=0)):
        rows = [t.layers[index] for t in texts]
        values, counts = {}, {}
        for name in (*MEASURES, DIFFERENCE):
            values[name], counts[name] = interval_of([row.value(name) for row in rows], name in GEOMETRIC)
        layer = rows[0].layer
        out.append(LayerAggregate(layer=layer, depth=depth(layer, n_layers), values=values, counts=counts))
    return out


def interval_of(values: list[float | None], geometric: bool) -> tuple[Interval, int]:
    """Interval.of_present, of log10 of the (positive) values when geometric, raised back to ratios."""
    if not geometric:
        return Interval.of_present(values)
    logs = [math.log10(v) if v is not None and v > 0 else None for v in values]
    interval, n = Interval.of_present(logs)
    ci95 = None if interval.ci95 is None else (10 ** interval.ci95[0], 10 ** interval.ci95[1])
    return Interval(mean=10**interval.mean, ci95=ci95), n


@dataclass(kw_only=True)
class GeometryResult:
    """The measures of every text read, and what they share block by block."""

    SCHEMA: ClassVar[int] = 1
    model: str
    n_layers: int
    hidden_size: int
    source: str = ""
    seed: int = 0  # of the shuffled pass's token order
    texts: list[TextGeometry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # texts left out, and why
    cancelled: bool = False

    def aggregate(self) -> list[LayerAggregate]:
        return aggregate(self.texts, self.n_layers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "reproduction",
            **fields.schema_of(type(self)),
            "model": self.model,
            "n_layers": self.n_layers,
            "hidden_size": self.hidden_size,
            "source": self.source,
            "seed": self.seed,
            "names": [text.name for text in self.texts],
            "texts": fields.encoded(self.texts),
            "aggregate": [layer.to_dict() for layer in self.aggregate()],
            "notes": self.notes,
            "cancelled": self.cancelled,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeometryResult:
        """The result to_dict describes; its aggregate is computed again from the texts."""
        return fields.from_dict(cls, data)


@dataclass(frozen=True, kw_only=True)
class GeometryStarted:
    """The reproduction's empty result: what every text shares, before the first text."""

    run: GeometryResult


@dataclass(frozen=True, kw_only=True)
class GeometryTextDone:
    """A text's two clean passes (as written, shuffled) measured at every block."""

    index: int
    total: int
    result: TextGeometry

    @property
    def message(self) -> str:
        return f"Text {self.index + 1}/{self.total}: {self.result.name}, {self.result.tokens} tokens"


GeometryEvent = GeometryStarted | TextStarted | GeometryTextDone | TextSkipped | Finished[GeometryResult]


class GeometryCollector:
    """Builds the GeometryResult from the events; what a consumer that stops early keeps (whole texts only)."""

    def __init__(self) -> None:
        self.result: GeometryResult | None = None

    def add(self, event: Any) -> None:
        if isinstance(event, GeometryStarted):  # a copy: each collector keeps its own
            run = event.run
            self.result = replace(run, texts=list(run.texts), notes=list(run.notes))
        elif self.result is None:
            return
        elif isinstance(event, GeometryTextDone):
            self.result.texts.append(event.result)
        elif isinstance(event, TextSkipped):
            self.result.notes.append(event.note)

    def cancelled(self) -> GeometryResult | None:
        """The texts done so far, marked cancelled; None before the reproduction started."""
        if self.result is not None:
            self.result.cancelled = True
        return self.result
