"""The three figures of `hsviewer reproduce`, drawn offscreen with pyqtgraph: each curve over relative
depth, the mean over texts as a line and its 95% interval as a band, on a white background."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from hsviewer.core.analyses.geometry.findings import Findings
from hsviewer.core.analyses.geometry.results import GeometryResult, LayerAggregate
from hsviewer.core.linalg.measures import MASSIVE_ONSET_RATIO
from hsviewer.gui.render import PALETTE, export_shown, legend_below, offscreen_app

SIZE = (1000, 620)
DEPTH = "Relative depth (block / (blocks − 1))"
BLUE, ORANGE, RED, GREY = PALETTE[0], PALETTE[1], PALETTE[3], "#555555"


class Curve(NamedTuple):
    name: str  # the aggregate's measure
    label: str  # in the legend
    color: str


FIGURES: dict[str, tuple[str, str, tuple[Curve, ...]]] = {  # file stem -> title, y axis, curves
    "anisotropy": (
        "Anisotropy s₁² / Σ s² (Razzhigaev et al. 2023)",
        "Anisotropy (share of variance on the top direction)",
        (
            Curve("anisotropy", "every token", BLUE),
            Curve("anisotropy_without_first", "without the first token (basis rows[1:])", ORANGE),
        ),
    ),
    "massive_activations": (
        "Top activation ratio max |a| / median |a| (Sun et al. 2024)",
        "Ratio (log scale; geometric mean over texts)",
        (Curve("massive_ratio", "max |a| / median |a|", BLUE),),
    ),
    "intrinsic_dimension": (
        "TwoNN intrinsic dimension, as written and shuffled (Viswanathan et al. 2025)",
        "Intrinsic dimension (TwoNN)",
        (Curve("twonn_dimension", "tokens as written", BLUE), Curve("twonn_dimension_shuffled", "shuffled", RED)),
    ),
}


def figure_writers(result: GeometryResult, findings: Findings, folder: Path) -> list[tuple[Path, Callable]]:
    """(path, writer) for each figure, for write_all: folder/STEM.png."""
    layers = result.aggregate()
    subtitle = f"{result.model}, {len(result.texts)} texts; mean and 95% interval over texts"
    return [(folder / f"{stem}.png", _writer(stem, layers, findings, subtitle)) for stem in FIGURES]


def _writer(stem: str, layers: list[LayerAggregate], findings: Findings, subtitle: str) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        import pyqtgraph as pg

        offscreen_app()
        pg.setConfigOptions(background="w", foreground="k", antialias=True)
        layout = pg.GraphicsLayoutWidget(size=SIZE)
        title, axis, curves = FIGURES[stem]
        plot = layout.addPlot(row=0, col=0)
        plot.setTitle(f"<b>{title}</b><br><span style='font-size:9pt'>{subtitle}</span>")
        plot.setLabel("left", axis)
        plot.setLabel("bottom", DEPTH)
        plot.showGrid(x=True, y=True, alpha=0.15)
        legend = legend_below(layout, 1, text_size="10pt")
        log = stem == "massive_activations"
        plot.setLogMode(y=log)
        for curve in curves:
            _draw(plot, legend, layers, curve, log)
        _marks(plot, legend, stem, findings, layers)
        if log:
            _decades(plot, layers, "massive_ratio")
        legend.setColumnCount(len(legend.items))
        plot.setXRange(0, 1, padding=0.03)
        legend.updateSize()
        legend.parentItem().setFixedHeight(legend.boundingRect().height() + 6)
        export_shown(layout, tmp)

    return write


def _draw(plot: Any, legend: Any, layers: list[LayerAggregate], curve: Curve, log: bool) -> None:
    """The mean as a line with points, the 95% interval as a band (where a block has one)."""
    import pyqtgraph as pg

    depth = np.array([a.depth for a in layers])
    mean = np.array([_value(a.mean(curve.name)) for a in layers])
    intervals = [(a.depth, a.values[curve.name].ci95) for a in layers]
    bands = [(depth, *ci) for depth, ci in intervals if ci is not None]
    bands = [b for b in bands if not log or b[1] > 0]
    if bands:
        x, low, high = (np.array(column) for column in zip(*bands, strict=True))
        pen = pg.mkPen(curve.color, width=0.5)
        lower, upper = plot.plot(x, low, pen=pen), plot.plot(x, high, pen=pen)
        plot.addItem(pg.FillBetweenItem(lower, upper, brush=pg.mkBrush(curve.color + "40")))
    style = {"pen": pg.mkPen(curve.color, width=2), "symbol": "o", "symbolSize": 6, "symbolBrush": curve.color}
    line = plot.plot(depth, mean, connect="finite", **style)
    legend.addItem(line, curve.label)


def _decades(plot: Any, layers: list[LayerAggregate], name: str) -> None:
    """Ticks at the powers of ten the curve and its band span, written out (10, 100, 1,000): a log
    axis's own minor labels (2·10³, 3·10³, ...) crowd each other."""
    values = [v for a in layers for v in (a.mean(name), *(a.values[name].ci95 or ())) if v is not None and v > 0]
    exponents = [math.log10(v) for v in (*values, MASSIVE_ONSET_RATIO)]
    ticks = [(k, f"{10**k:,}") for k in range(math.floor(min(exponents)), math.ceil(max(exponents)) + 1)]
    plot.getAxis("left").setTicks([ticks, []])


def _value(value: float | None) -> float:
    return math.nan if value is None else value


def _marks(plot: Any, legend: Any, stem: str, findings: Findings, layers: list[LayerAggregate]) -> None:
    """What the page reads off the figure: the anisotropy peaks, the threshold and the onset; a note where
    no text is long enough for TwoNN."""
    import pyqtgraph as pg

    dashed = pg.QtCore.Qt.PenStyle.DashLine
    if stem == "anisotropy":
        for peak, color in ((findings.anisotropy, BLUE), (findings.anisotropy_without_first, ORANGE)):
            if peak is not None:
                plot.plot([peak.depth], [peak.value], pen=None, symbol="star", symbolSize=16, symbolBrush=color)
        plot.setYRange(0, 1, padding=0.02)
    elif stem == "massive_activations":
        line = pg.InfiniteLine(math.log10(MASSIVE_ONSET_RATIO), angle=0, pen=pg.mkPen(GREY, style=dashed))
        plot.addItem(line)
        legend.addItem(pg.PlotDataItem(pen=pg.mkPen(GREY, style=dashed)), f"{MASSIVE_ONSET_RATIO:g}× the median")
        massive = findings.massive
        if massive.onset_depth is not None:
            pen = pg.mkPen(RED, width=1.5, style=dashed)
            plot.addItem(pg.InfiniteLine(massive.onset_depth, angle=90, pen=pen))
            legend.addItem(pg.PlotDataItem(pen=pen), f"onset: block {massive.onset_layer}")
    elif all(a.mean("twonn_dimension") is None for a in layers):
        plot.addItem(pg.TextItem("No block has a TwoNN dimension: every text is under 20 tokens.", color="k"))
