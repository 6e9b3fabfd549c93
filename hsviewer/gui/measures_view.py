"""The sweep tab's Measures page: each threshold-free measure of the clean hidden state over relative
depth, one panel per measure and one curve per run (the plain sweep and each control, in the sweep
tab's run colours), a gap where a layer has no value, a note where a run has none at all, and the
massive-activation onset marked. Relative depth (block / (blocks − 1)) lets these pictures be read
against the comparisons and against papers' figures of models of other depths."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from hsviewer.core.analyses.sweep.results import SweepResult
from hsviewer.core.choices import parse_control
from hsviewer.core.library.compare import relative_depth
from hsviewer.core.linalg.geometry import TWONN_MIN_POINTS
from hsviewer.core.linalg.measures import GEOMETRY, SpectrumMeasures
from hsviewer.gui import plots
from hsviewer.gui.control_inputs import run_name, run_pen
from hsviewer.gui.plot_area import PlotArea, scroll_area

DEPTH = "Relative depth"
# Room past 1 for the last tick's label: pyqtgraph hides a label that reaches past a gridded axis's end.
DEPTH_RANGE = (-0.03, 1.07)
MASSIVE = "massive_activation"  # its ratio: the one measure that is not a plain number of SpectrumMeasures
SAVED_BEFORE = "not in this run: saved before hsviewer measured it"
ONSET_PEN = "#d62728"
ONSET_POINTS = 8  # the onset's label: small enough to fit beside a line in the middle of a narrow panel
EMPTY = "Run the sweep to fill this"
# Each run's marker (symbol, size, stacking): the larger under the smaller, so that runs with equal values
# (the controls that measure the same clean state: random, often exclude first and exclude massive) show
# as markers nested in each other rather than one hiding the rest.
RUN_MARKERS = {
    "": ("h", 11, 0),
    "exclude_first": ("o", 8, 1),
    "exclude_massive": ("o", 5, 2),
    "random": ("t", 6, 3),
    "shuffled": ("s", 6, 4),
}


@dataclass(frozen=True)
class Measure:
    """One panel: the measure's key (a SpectrumMeasures field, or MASSIVE), its title, axis and tooltip."""

    key: str
    title: str
    y_label: str
    tip: str
    unit: bool = False  # a share, 0 to 1: the axis stays 0 to 1 so panels and runs read alike
    log: bool = False


MEASURES = (
    Measure(
        "participation_ratio", "Participation ratio", "Components",
        "Participation ratio (Σs²)²/Σs⁴ of the centred hidden state's singular values s: how many directions "
        "hold the variance, no threshold needed (1 for rank 1, n for n equal values)",
    ),
    Measure(
        "effective_rank", "Effective rank", "Components",
        "Effective rank exp(−Σ p log p), p = s/Σs (Roy and Vetterli 2007): as the participation ratio, "
        "weighting the small directions more",
    ),
    Measure(
        MASSIVE, "Massive activation", "Max / median",
        "The largest |activation| of the raw hidden state over its median |activation| (Sun et al. 2024), on "
        "a log scale; the dashed line is the onset, the first block past 100×",
        log=True,
    ),
    Measure(
        "anisotropy", "Anisotropy", "s₁² / Σs²",
        "Anisotropy: the share of the centred variance on the first principal direction, s₁²/Σs² "
        "(Razzhigaev et al. 2311.05928); 1 when one direction holds it all",
        unit=True,
    ),
    Measure(
        "twonn_dimension", "TwoNN intrinsic dimension", "Dimension",
        "TwoNN (Facco et al. 2017): the nonlinear intrinsic dimension of the token cloud, from each token's "
        f"two nearest neighbours; null below {TWONN_MIN_POINTS} tokens",
    ),
    Measure(
        "prompt_entropy_normalised", "Prompt entropy (normalised)", "H / log rank",
        "Prompt entropy (Skean et al. 2502.02013): the matrix entropy of the tokens' Gram matrix, normalised "
        "by log rank; 1 when the variance is spread evenly over every direction",
        unit=True,
    ),
    Measure(
        "linearity", "Linearity to the next block", "Similarity",
        "Linearity (after 2405.12250): orthogonal Procrustes similarity of this block's and the next block's "
        "centred, normalised token matrices; 1 when the next is a rotation of this one; none at the last block",
        unit=True,
    ),
)  # fmt: skip


def measure_value(measures: SpectrumMeasures | None, key: str) -> float:
    """A layer's value of the measure, NaN (a gap) where it has none; a ratio that is not a positive
    finite number has no place on a log axis and is a gap too."""
    if measures is None:
        return math.nan
    if key == MASSIVE:
        ratio = measures.massive_activation.ratio
        return ratio if math.isfinite(ratio) and ratio > 0 else math.nan
    value = getattr(measures, key)
    return math.nan if value is None else float(value)


def absent_note(key: str, runs: Sequence[SweepResult]) -> str:
    """Why the runs have no value of the measure at any layer: saved before hsviewer measured it (no
    layer has any geometry measure), a text too short for TwoNN, or a run of one block for linearity."""
    layers = [layer for run in runs for layer in run.layers]
    if not layers:
        return "nothing measured yet"
    new = key in GEOMETRY
    measured = [layer.measures for layer in layers if layer.measures is not None]
    if not measured or (new and all(getattr(m, name) is None for m in measured for name in GEOMETRY)):
        return SAVED_BEFORE
    if key == "twonn_dimension":
        shortest = min(len(run.tokens) for run in runs)
        return f"TwoNN needs {TWONN_MIN_POINTS} tokens or more: this text has {shortest}"
    if key == "linearity":
        return "no next block to compare with"
    return "no value at any block of this run"


def drawable(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points as given, gaps (NaN) and all; none when no point has a value (pyqtgraph's markers
    warn of an all-NaN slice, and there is nothing to draw)."""
    return (x, y) if np.isfinite(y).any() else (np.empty(0), np.empty(0))


def show_note(plot: pg.PlotItem, note: pg.TextItem, text: str | None, *, depth: bool, unit: bool = False) -> None:
    """A note in the middle of the panel instead of its curves, or (None) the curves: over relative depth
    x from 0 to 1 and y 0 to 1 for a share, else following the data."""
    note.setVisible(text is not None)
    if text is not None:
        note.setText(text)
        plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
    elif not depth:
        plot.enableAutoRange()
    else:
        plot.setXRange(*DEPTH_RANGE, padding=0)
        if unit:
            plot.setYRange(-0.06, 1.08, padding=0)  # 0 and 1 labelled: pyqtgraph leaves an edge tick bare
        else:
            plot.enableAutoRange(axis="y")


class MeasurePanel:
    """One measure over relative depth: a curve per run, a note in place of empty axes, the onset line."""

    def __init__(self, area: PlotArea, measure: Measure) -> None:
        self.measure = measure
        self.plot = plots.line_plot(area, measure.title, DEPTH, measure.y_label)
        self.plot.setLogMode(y=measure.log)
        plots.legend_below(self.plot)
        self.plot.setToolTip(measure.tip)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.note = plots.empty_note(self.plot, EMPTY)
        self.onset = pg.InfiniteLine(
            angle=90,
            pen=pg.mkPen(ONSET_PEN, width=1.5, style=Qt.PenStyle.DashLine),
            label="" if measure.key == MASSIVE else None,  # labelled on the ratio's panel only
            labelOpts={"position": 0.95, "color": ONSET_PEN, "fill": (255, 255, 255, 200)},
        )
        if measure.key == MASSIVE:
            self.onset.label.setFont(QFont(self.onset.label.textItem.font().family(), ONSET_POINTS))
        self.plot.addItem(self.onset, ignoreBounds=True)
        self.onset.hide()

    def clear(self) -> None:
        for curve in self.curves.values():
            self.plot.removeItem(curve)
            self.plot.legend.removeItem(curve)
        self.curves = {}
        self.onset.hide()
        self.show_note(EMPTY)

    def set_run(self, label: str, depth: np.ndarray, values: np.ndarray) -> None:
        """The run's curve (made the first time), its marker by RUN_MARKERS."""
        curve = self.curves.get(label)
        if curve is None:
            brush = plots.PINK if label == "" else run_pen(label)
            symbol, size, z = RUN_MARKERS[parse_control(label).name if label else ""]
            name = "plain run" if label == "" else run_name(label)
            curve = self.plot.plot(name=name, connect="finite", **plots.markers(brush, symbol, size, run_pen(label)))
            curve.setZValue(z)
            self.curves[label] = curve
        curve.setData(*drawable(depth, values), connect="finite")

    def show_note(self, text: str | None) -> None:
        show_note(self.plot, self.note, text, depth=True, unit=self.measure.unit)

    def set_onset(self, depth: float | None, text: str) -> None:
        self.onset.setVisible(depth is not None)
        if depth is not None:
            self.onset.setValue(depth)
            self.onset.setToolTip(text)
            if self.measure.key == MASSIVE:
                # on the side with the more room: pyqtgraph's own choice, towards the view's centre,
                # put it left of a line in the middle, past the panel's edge in a narrow panel
                side = (0, 0) if depth <= 0.5 else (1, 0)
                self.onset.label.anchors = [side, side]
                self.onset.label.setFormat(text.replace(" (", "\n("))  # two short lines: narrower
                self.onset.label.updatePosition()


class MeasuresView(QWidget):
    """The threshold-free measures of every run of a sweep, a panel each, redrawn as layers finish."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.graphics = PlotArea(max_columns=3)
        self.panels = {measure.key: MeasurePanel(self.graphics, measure) for measure in MEASURES}
        self.runs: dict[str, SweepResult] = {}
        self.label = QLabel("")
        self.label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll_area(self.graphics), 1)
        layout.addWidget(self.label)

    def plots(self) -> dict[str, pg.PlotItem]:
        """The panels by their titles."""
        return {panel.measure.title: panel.plot for panel in self.panels.values()}

    def begin(self) -> None:
        """A new sweep: no runs drawn."""
        self.runs = {}
        for panel in self.panels.values():
            panel.clear()
        self.label.setText("")

    def set_run(self, label: str, run: SweepResult) -> None:
        """Draw (again) one run's layers so far: "" the plain sweep, else a control's label."""
        self.runs[label] = run
        depth = relative_depth(np.array([r.layer for r in run.layers]), run.n_layers)
        for key, panel in self.panels.items():
            panel.set_run(label, depth, np.array([measure_value(r.measures, key) for r in run.layers]))
            drawn = any(c.yData is not None and len(c.yData) for c in panel.curves.values())
            panel.show_note(None if drawn else absent_note(key, [*self.runs.values()]))
        if label == "":
            self._onset(run)
            self._describe(run)

    def _onset(self, run: SweepResult) -> None:
        """The plain run's massive-activation onset, a dashed line on every panel, labelled on the ratio's."""
        onset = run.massive_activation_onset()
        layer = onset["layer"]
        depth = None if layer is None else float(relative_depth(np.array([layer]), run.n_layers)[0])
        text = "" if layer is None else f"onset: layer {layer} (> {onset['threshold']:g}×)"
        for panel in self.panels.values():
            panel.set_onset(depth, text)

    def _describe(self, run: SweepResult) -> None:
        last = run.layers[-1] if run.layers else None
        if last is None or last.measures is None:
            self.label.setText("")
            return
        m, spike = last.measures, last.measures.massive_activation
        token = repr(run.tokens[spike.token]) if spike.token < len(run.tokens) else str(spike.token)
        self.label.setText(
            f"Layer {last.layer}: participation ratio {m.participation_ratio:.2f}, effective rank "
            f"{m.effective_rank:.2f}; largest |activation| {spike.ratio:.0f}× the median, token {spike.token} "
            f"{token}, dimension {spike.dimension}"
        )
