"""Layer sweep tab (notebook Part 4): reduce each layer in turn; every panel grows as layers finish."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QWidget,
)

from hsviewer.core.analyses.corpus.results import CorpusResult
from hsviewer.core.analyses.sweep.results import LayerDone, LayerResult, RunStarted, SweepCollector, SweepResult
from hsviewer.core.analyses.sweep.spec import SweepSpec
from hsviewer.core.errors import HsviewerError
from hsviewer.core.linalg import grid as core_grid
from hsviewer.core.linalg.reduction import Reduction
from hsviewer.gui import plots
from hsviewer.gui.control_inputs import ControlInputs, run_name, run_pen
from hsviewer.gui.corpus_view import CorpusView, TextsSource
from hsviewer.gui.forms import ReductionForm, inputs_beside_plots
from hsviewer.gui.jobs import corpus_job, sweep_job
from hsviewer.gui.measures_view import MeasuresView
from hsviewer.gui.plot_area import PlotArea, scroll_area
from hsviewer.gui.settings import Settings
from hsviewer.state.inputs import SweepInputs, describe

if TYPE_CHECKING:
    from hsviewer.core.library.store import Run
    from hsviewer.gui.job_wiring import Submit
    from hsviewer.state.app import AppState
    from hsviewer.state.model import ModelInfo

PANEL_TIPS = {
    "A) Components kept": (
        "How many components each layer's reduction kept (from the threshold, or the fixed k); one curve per run."
    ),
    "B) Impact on logits and hidden states": (
        "For each layer reduced: the norm of the change to that layer's hidden state (blue squares) and to "
        "the final logits (pink circles), each divided by its largest value so both share one axis."
    ),
    "C) Impact of reduction on loss": (
        "Next-token loss (cross-entropy, nats) with that layer reduced; the green dashed line is the clean "
        "loss. Higher means the model predicts the text worse."
    ),
    "D) KL divergence": (
        "KL(clean ‖ reduced) between the next-token distributions, mean over tokens, in nats: how far the "
        "predictions moved. 0 means unchanged."
    ),
    "E) Reduction vs. loss": (
        "One point per layer: the percent of dimensions kept (k over the smaller of tokens and dimensions) "
        "against the loss; its colour is the layer (colour bar)."
    ),
    "F) Loss change by threshold": (
        "Loss minus clean loss for each layer (rows) and each grid threshold (columns): fill in Grid "
        "thresholds to see it. Brighter means a bigger loss increase."
    ),
    "G) Impact of reduction on hidden states (per-token difference norm)": (
        "The norm of each token's hidden-state change at the layer reduced: rows are layers, columns tokens. "
        "Bright cells are tokens the reduction changes most."
    ),
}
EMPTY_GRID_NOTE = "Type thresholds in Grid thresholds\n(e.g. 80,90,95,99) and run\nthe sweep to fill this"
LAYER_MAP = "viridis"  # dark to light like the notebook's CMRmap, but no white marker on a white plot


def parse_grid(text: str, centering: str) -> list[Reduction]:
    """'80, 90; 95%' -> one threshold Reduction per value; empty text -> no grid (the core's parser)."""
    return core_grid.parse_grid(text, Reduction(centering=centering))


class SweepTab(QWidget):
    """Sweep settings on the left; the Part 4 panels, plus controls, KL and the threshold grid: a view
    of the app state's sweep and corpus sweep (hsviewer.state), which it draws and forwards runs to."""

    kinds = ("sweep", "corpus")  # the saved runs it draws (the Runs tab's Open)
    error = Signal(str)
    layer_shown = Signal(str, int)  # run label, layer

    def __init__(
        self,
        submit: Submit,
        state: AppState,
        text: Callable[[], str],
        parent: QWidget | None = None,
        set_text: Callable[[str], None] | None = None,
    ):
        """text, set_text: read and set the text sweeps run on (the Hidden state tab's)."""
        super().__init__(parent)
        self._submit = submit
        self.state = state
        self._text = text
        self._set_text = set_text
        self.layer_names: list[str] = []
        self.grid_labels: list[str] = []
        self._build_inputs()
        self._build_plots()
        inputs_beside_plots(self, self.inputs, self._build_views(), 300)
        self._observe(state)

    def _observe(self, state: AppState) -> None:
        sweep, corpus = state.sweep, state.corpus
        sweep.started.connect(self.begin)
        sweep.control_started.connect(self._control_clean_loss)
        sweep.layer_done.connect(self.add_layer)
        sweep.finished.connect(self.finish)
        sweep.ended_empty.connect(self._ended_empty)
        corpus.started.connect(self._corpus_started)
        corpus.progressed.connect(self._corpus_progressed)
        corpus.ended.connect(self._corpus_ended)
        state.model_changed.connect(self._model_changed)

    @property
    def result(self) -> SweepResult | None:
        """The finished (or cancelled) sweep shown, as the state holds it."""
        return self.state.sweep.result

    @result.setter
    def result(self, result: SweepResult | None) -> None:
        self.state.sweep.result = result

    @property
    def start(self) -> RunStarted | None:
        return self.state.sweep.start

    @property
    def collector(self) -> SweepCollector | None:
        return self.state.sweep.collector

    @property
    def corpus_result(self) -> CorpusResult | None:
        return self.state.corpus.result

    def _build_inputs(self) -> None:
        self.inputs = QWidget()
        self.form = ReductionForm(threshold=95.0)
        self.grid_field = QLineEdit()
        self.grid_field.setPlaceholderText("e.g. 80,90,95,99")
        self.grid_field.setToolTip("More thresholds whose loss is measured at every layer (layers × thresholds grid)")
        self.control_inputs = ControlInputs()
        self.control_boxes = self.control_inputs.boxes
        self.run_button = QPushButton("Run sweep")
        self.run_button.setShortcut(QKeySequence("Ctrl+R"))  # active only while this tab is shown
        self.run_button.setToolTip("Reduce every layer in turn (Ctrl+R)")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setToolTip("Stop this tab's sweep after its current layer, keeping the layers done")
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        self.summary = QLabel("Runs on the text of the Hidden state tab.")
        self.summary.setWordWrap(True)
        self.hover = plots.ReadoutLabel("Hover a heatmap to read its values")
        form = QFormLayout(self.inputs)
        self.texts_source = TextsSource()
        form.addRow("Texts", self.texts_source)
        form.addRow(QLabel("<b>Reduction at each layer</b>"))
        form.addRow(self.form)
        form.addRow("Grid thresholds", self.grid_field)
        form.addRow(QLabel("<b>Controls</b> (each a sweep of its own)"))
        form.addRow(self.control_inputs)
        form.addRow(buttons)
        form.addRow(self.summary)
        form.addRow(self.hover)

    def _build_plots(self) -> None:
        self.graphics = PlotArea(max_columns=3)
        top = middle = self.graphics  # the panels flow in reading order
        self.components = plots.line_plot(top, "A) Components kept", "Layer", "Count", col=0)
        self.norms = plots.line_plot(top, "B) Impact on logits and hidden states", "Layer", "Norm / max", col=1)
        self.loss = plots.line_plot(top, "C) Impact of reduction on loss", "Layer", "Loss", col=2)
        self.kl = plots.line_plot(top, "D) KL divergence", "Layer", "KL (nats)", col=3)
        for plot in (self.norms, self.loss, self.kl, self.components):
            plots.legend_below(plot)
        self.hidden_curve = self.norms.plot(name="Hidden states", **plots.markers(plots.BLUE, "s", 9, "b"))
        self.logit_curve = self.norms.plot(name="Logits", **plots.markers(plots.PINK, "o", 9, "r"))
        self.clean_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("g", width=1.5, style=Qt.PenStyle.DashLine))
        self.loss.addItem(self.clean_line)
        self.loss.legend.addItem(pg.PlotDataItem(pen=self.clean_line.pen), "clean")
        self.clean_line.hide()
        self.control_clean_lines: dict[str, pg.InfiniteLine] = {}  # legend name -> line, for controls
        # whose tokens differ (shuffled), so that their clean loss differs too
        self.curves: dict[
            str, dict[str, pg.PlotDataItem]
        ] = {}  # run label -> plot name -> its curve, made as runs arrive
        self.dimensionality = plots.line_plot(
            middle, "E) Reduction vs. loss", "Hidden-state dimensionality (% of total)", "Loss", col=0
        )
        self.dim_points = pg.ScatterPlotItem(size=14, pen=pg.mkPen("k"))
        self.dimensionality.addItem(self.dim_points)
        self.layer_bar = pg.ColorBarItem(values=(0, 1), colorMap=pg.colormap.get(LAYER_MAP), interactive=False)
        self.layer_bar.axis.setLabel("Hidden layer")
        self.dimensionality.layout.addItem(self.layer_bar, 2, 5)  # beside D's plot, inside its panel
        self.grid_map = plots.Heatmap(
            middle, "F) Loss change by threshold", "CET-L4", "Threshold", "Layer",
            labelled_rows=True, labelled_cols=True, rows_down=False, col=2,
        )  # fmt: skip
        self.grid_map.describe = self._describe_grid
        self.grid_note = pg.TextItem(EMPTY_GRID_NOTE, color="#555555", anchor=(0.5, 0.5))
        self.grid_map.plot.addItem(self.grid_note, ignoreBounds=True)
        self.grid_note.setPos(0.5, 0.5)
        self.grid_map.plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)  # the note in view before a sweep
        self.tokens_map = plots.Heatmap(
            self.graphics, "G) Impact of reduction on hidden states (per-token difference norm)", "magma",
            "Token", "Layer", labelled_rows=True, labelled_cols=True, rows_down=False, row=2, col=0,
        )  # fmt: skip
        self.tokens_map.describe = self._describe_token
        self.graphics.make_wide(self.tokens_map.plot)
        self.layer_bar.setToolTip("The colour of each point in D: the layer it was reduced at")
        self.graphics.set_stretch([self.components, self.norms, self.loss, self.kl], 4)
        self.graphics.set_stretch([self.dimensionality, self.grid_map.plot], 4)
        self.graphics.set_stretch([self.tokens_map.plot], 3)
        plots.set_tooltips(self.plots(), PANEL_TIPS)

    def _build_views(self) -> QTabWidget:
        """The one-text panels, the corpus bands and the threshold-free measures, a page each."""
        self.views = QTabWidget()
        self.corpus_view = CorpusView()
        self.corpus_view.open_text.connect(self.open_corpus_text)
        self.measures_view = MeasuresView()
        self.views.addTab(scroll_area(self.graphics), "One text")
        self.views.addTab(self.corpus_view, "Corpus")
        self.views.addTab(self.measures_view, "Measures")
        self.views.setTabToolTip(1, "A corpus sweep: mean and 95% interval over the texts, and the texts")
        self.views.setTabToolTip(
            2,
            "Per layer, over relative depth, for every run: participation ratio, effective rank, massive "
            "activation and its onset, anisotropy, TwoNN dimension, prompt entropy and linearity",
        )
        return self.views

    def plots(self) -> dict[str, Any]:
        """The exportable panels by their titles (which never change here)."""
        panels = (self.components, self.norms, self.loss, self.kl, self.dimensionality)
        return {p.titleLabel.text: p for p in (*panels, self.grid_map.plot, self.tokens_map.plot)}

    def run(self) -> None:
        """Queue a sweep with the chosen reduction, grid and controls."""
        try:
            reduction = self.form.reduction()
            grid = parse_grid(self.grid_field.text(), reduction.centering)
            spec = SweepSpec(reduction=reduction, grid=grid, controls=self.control_inputs.controls())
        except HsviewerError as e:
            self.error.emit(str(e))
            return
        if self.texts_source.corpus() is not None:
            self._run_corpus(spec)
            return
        self.summary.setText("Sweep queued…")
        self.views.setCurrentIndex(0)  # its page, as a corpus sweep brings up the Corpus page
        text = self._text()
        job = sweep_job(text, spec)
        self._submit(job, self.state.sweep.track(job, text))

    def cancel(self) -> None:
        """Stop this tab's sweeps (the running one after its current layer), keeping the layers done."""
        self.state.sweep.cancel()
        self.state.corpus.cancel()

    def _ended_empty(self, why: str) -> None:
        """A sweep ended with no new result: cancelled before its first layer, or failed."""
        if why == "cancelled":
            self.summary.setText("Sweep cancelled before its first layer.")
        else:
            self.summary.setText("The sweep failed." if self.result is None else self._finished_text(self.result))

    def asked(self) -> SweepInputs | None:
        """What the inputs ask for now (None: the form does not read as a reduction)."""
        model = self.state.model.name if self.state.model else None
        try:
            reduction = self.form.reduction()
            grid = parse_grid(self.grid_field.text(), reduction.centering)
        except HsviewerError:
            return None
        controls = tuple(self.control_inputs.controls())
        return SweepInputs(model=model, text=self._text(), reduction=reduction, grid=tuple(grid), controls=controls)

    def _model_changed(self, info: ModelInfo) -> None:
        """Say above the summary when the sweep shown was made with another model (and what else differs)."""
        asked = self.asked()
        changed = () if asked is None else self.state.sweep.out_of_date(asked)
        if self.result is not None and "model" in changed and not self.state.sweep.busy:
            note = f"<b>Out of date:</b> {describe(changed)}; press Run sweep (Ctrl+R).<br>"
            self.summary.setText(note + self._finished_text(self.result))

    def _control_clean_loss(self, start: RunStarted) -> None:
        """A control run on other tokens (shuffled) has its own clean loss: a line of its colour, so
        its losses are read against it and not against the plain run's."""
        if self.start is None or abs(start.run.clean_loss - self.start.run.clean_loss) < 1e-9:
            return
        pen = pg.mkPen(run_pen(start.label), width=1.5, style=Qt.PenStyle.DashLine)
        line = pg.InfiniteLine(pos=start.run.clean_loss, angle=0, pen=pen)
        line.setToolTip(f"Clean loss of the {run_name(start.label)} run: {start.run.clean_loss:.4f}")
        name = f"clean ({run_name(start.label)})"
        self.loss.addItem(line)
        self.loss.legend.addItem(pg.PlotDataItem(pen=pen), name)
        self.control_clean_lines[name] = line

    def begin(self, start: RunStarted) -> None:
        """Clear the panels and size them for this model and text."""
        for name, line in self.control_clean_lines.items():
            self.loss.removeItem(line)
            self.loss.legend.removeItem(name)
        self.control_clean_lines = {}
        self.grid_labels = [g.label() for g in start.run.grid]
        for curves in self.curves.values():
            for plot_name, curve in curves.items():
                getattr(self, plot_name).removeItem(curve)
        self.curves = {}
        for curve in (self.hidden_curve, self.logit_curve):
            curve.setData([], [])
        self.dim_points.clear()
        self.measures_view.begin()
        run = start.run
        self.clean_line.setValue(run.clean_loss)
        self.clean_line.show()
        self.clean_line.setToolTip(f"Clean loss {run.clean_loss:.4f}")
        self.layer_bar.setLevels((0, max(run.n_layers - 1, 1)))
        nan = np.full((run.n_layers, len(run.tokens)), np.nan, dtype=np.float32)
        self.layer_names = [str(i) for i in range(run.n_layers)]
        self.tokens_map.set_data(nan, (0.0, 1.0), self.layer_names, run.tokens)
        grid = np.full((run.n_layers, max(len(self.grid_labels), 1)), np.nan, dtype=np.float32)
        self.grid_map.set_data(grid, (0.0, 1.0), self.layer_names, self.grid_labels)
        self.grid_note.setVisible(not self.grid_labels)
        self.grid_note.setPos(grid.shape[1] / 2, run.n_layers / 2)
        self.summary.setText(f"Clean loss {run.clean_loss:.4f}; sweeping {run.n_layers} layers…")

    def add_layer(self, step: LayerDone) -> None:
        """One more layer is done (the collector has it): extend every panel with it."""
        if self.start is None or self.collector is None:
            return
        results = self.collector.runs[step.label].layers
        layers = np.array([r.layer for r in results])
        self._curve(step.label, "components", layers, [r.components for r in results])
        self._curve(step.label, "loss", layers, [r.loss for r in results])
        self._curve(step.label, "kl", layers, [r.kl_divergence for r in results])
        self.measures_view.set_run(step.label, self.collector.runs[step.label])
        if step.label == "":
            self._draw_main(self.start, results, layers)
        self.summary.setText(f"{step.done} of {step.total} layer runs done")
        self.layer_shown.emit(step.label, step.result.layer)

    def _curve(self, label: str, plot_name: str, x: np.ndarray, y: list[float]) -> None:
        own = self.curves.setdefault(label, {})
        curve = own.get(plot_name)
        if curve is None:
            name = "reduced" if label == "" else run_name(label)
            brush = plots.PINK if label == "" else run_pen(label)
            curve = getattr(self, plot_name).plot(name=name, **plots.markers(brush, "h", 10, run_pen(label)))
            own[plot_name] = curve
        curve.setData(x, np.asarray(y, dtype=float))
        if plot_name == "components":
            tops = [np.nanmax(c.yData) for run in self.curves.values() if (c := run.get("components")) and len(c.yData)]
            plots.from_zero(self.components, max(tops, default=1.0))

    def _draw_main(self, start: RunStarted, results: list[LayerResult], layers: np.ndarray) -> None:
        run = start.run
        hidden = np.array([r.hidden_diff_norm for r in results])
        logits = np.array([r.logit_diff_norm for r in results])
        self.hidden_curve.setData(layers, hidden / max(hidden.max(), 1e-30))
        self.logit_curve.setData(layers, logits / max(logits.max(), 1e-30))
        total = min(len(run.tokens), start.hidden_size)
        percent = 100.0 * np.array([r.components for r in results]) / total
        colormap = pg.colormap.get(LAYER_MAP)
        brushes = [colormap.map(layer / max(run.n_layers - 1, 1), mode="qcolor") for layer in layers]
        self.dim_points.setData(percent, [r.loss for r in results], brush=brushes)
        tokens = self.tokens_map.image.image.copy()
        latest = results[-1]
        tokens[latest.layer, : len(latest.token_diff_norms)] = latest.token_diff_norms
        self.tokens_map.set_data(tokens, plots.span_levels(tokens, 2, 98), self.layer_names, run.tokens)
        if latest.grid_loss:
            grid = self.grid_map.image.image.copy()
            grid[latest.layer] = np.asarray(latest.grid_loss) - run.clean_loss
            self.grid_map.set_data(grid, plots.span_levels(grid), self.layer_names, self.grid_labels)

    def _run_corpus(self, spec: SweepSpec) -> None:
        source = self.texts_source.corpus()
        if source is None:
            self.error.emit("Choose a corpus file or folder first.")
            return
        self.summary.setText("Corpus sweep queued…")
        job = corpus_job(source, spec)
        self._submit(job, self.state.corpus.track(job))

    def _corpus_started(self, result: CorpusResult) -> None:
        self.corpus_view.begin(result)
        self.views.setCurrentWidget(self.corpus_view)

    def _corpus_progressed(self, result: CorpusResult) -> None:
        self.corpus_view.update_result(result)
        self.summary.setText(f"Corpus sweep: {len(result.texts)} texts done")

    def _corpus_ended(self, result: CorpusResult) -> None:
        """A corpus sweep ended or was cancelled (the texts done), or one was opened from the library."""
        self.corpus_view.update_result(result)
        self.summary.setText(self.corpus_view.describe(result))

    def open_corpus_text(self, index: int) -> None:
        """Show one text of the corpus sweep in the one-text panels, as if it had just run."""
        corpus = self.corpus_view.result
        if corpus is None or not 0 <= index < len(corpus.texts):
            return
        result = corpus.texts[index]
        self.state.sweep.replay(result, corpus.hidden_size)
        self.summary.setText(f"{corpus.names[index]}: {self._finished_text(result)}")
        self.views.setCurrentIndex(0)

    def finish(self, result: SweepResult) -> None:
        """The sweep ended (or was cancelled, or was redrawn): the state keeps it for export."""
        self.summary.setText(self._finished_text(result))
        self.clean_line.setValue(result.clean_loss)

    def show_run(self, run: Run, set_inputs: bool = True) -> None:
        """Redraw a sweep (or a corpus sweep) saved in the library from its own events, as it was drawn
        live, without computing; set_inputs: put its settings in the inputs, so that a re-run repeats it."""
        if run.info.kind == "corpus":
            self._show_corpus_run(run, set_inputs)
            return
        if self.state.sweep.busy:
            raise HsviewerError("A sweep is running: open the saved one when it ends (or cancel it).")
        result = run.result()
        texts = run.provenance.get("texts")
        text = str(texts[0]) if isinstance(texts, list) and len(texts) == 1 else None
        self.state.sweep.replay(result, run.hidden_size() or len(result.tokens), text)
        self.summary.setText(f"<b>{run.info.name}</b> (saved {run.info.when})<br>{self._finished_text(result)}")
        self.views.setCurrentIndex(0)
        if set_inputs:
            self._set_inputs(result.reduction, result.grid, list(result.controls), None)
            if self._set_text is not None and text is not None:
                self._set_text(text)

    def _show_corpus_run(self, run: Run, set_inputs: bool) -> None:
        if self.state.corpus.busy:
            raise HsviewerError("A corpus sweep is running: open the saved one when it ends (or cancel it).")
        result = run.result()
        self.corpus_view.begin(result)
        self.state.corpus.show(result)
        self.views.setCurrentWidget(self.corpus_view)
        self.summary.setText(f"<b>{run.info.name}</b> (saved {run.info.when})<br>{self.corpus_view.describe(result)}")
        if set_inputs:
            grid = result.texts[0].grid if result.texts else []
            self._set_inputs(result.reduction, grid, result.controls, result.source)

    def _set_inputs(self, reduction: Reduction, grid: list[Reduction], controls: list[str], corpus: str | None) -> None:
        """The inputs a run was made with: reduction, grid, controls and its texts (None: one text)."""
        self.form.set_reduction(reduction)
        self.grid_field.setText(", ".join(f"{g.threshold:g}" for g in grid if g.threshold is not None))
        self.control_inputs.set_controls(controls)
        self.texts_source.set_source(corpus)

    @staticmethod
    def _finished_text(result: SweepResult) -> str:
        done = len(result.layers)
        state = f"cancelled after {done} of {result.n_layers} layers" if result.cancelled else "finished"
        return f"Sweep {state}. Clean loss {result.clean_loss:.4f}."

    def exportable(self) -> tuple[Any, list[list[Any]]] | None:
        """The result and its CSV rows, for File > Export data."""
        from hsviewer.core.analyses.corpus.kind import CORPUS
        from hsviewer.core.analyses.sweep.kind import SWEEP

        if self.views.currentWidget() is self.corpus_view and self.corpus_result is not None:
            return self.corpus_result, CORPUS.table(self.corpus_result)
        return None if self.result is None else (self.result, SWEEP.table(self.result))

    def _describe_token(self, row: int, col: int, value: float) -> None:
        tokens = self.start.run.tokens if self.start else []
        token = repr(tokens[col]) if col < len(tokens) else "?"
        self.hover.setText(f"Layer {row}, token {col} {token}: difference norm {value:.4g}")

    def _describe_grid(self, row: int, col: int, value: float) -> None:
        setting = self.grid_labels[col] if col < len(self.grid_labels) else "?"
        self.hover.setText(f"Layer {row}, threshold {setting}: loss change {value:+.4g}")

    def save_settings(self, settings: Settings) -> None:
        self.form.save(settings, "sweep")
        self.texts_source.save(settings)
        settings.set("sweep/grid", self.grid_field.text())
        self.control_inputs.save(settings)

    def restore_settings(self, settings: Settings) -> None:
        self.form.restore(settings, "sweep")
        self.texts_source.restore(settings)
        self.grid_field.setText(settings.get("sweep/grid", "", str))
        self.control_inputs.restore(settings)
