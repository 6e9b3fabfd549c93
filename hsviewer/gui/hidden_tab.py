"""Hidden state tab (notebook Parts 2 and 3): reduce one layer's hidden state, then apply the
reduction inside the forward pass and see how far the change travels."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from hsviewer.core.analyses.reduce.spec import ReduceSpec
from hsviewer.core.errors import HsviewerError
from hsviewer.gui import plots
from hsviewer.gui.forms import ModelPicker, ReductionForm, inputs_beside_plots
from hsviewer.gui.intervene_box import InterventionBox
from hsviewer.gui.jobs import hidden_job
from hsviewer.gui.measure_marks import MeasureLines, SpikeMarker
from hsviewer.gui.plot_area import PlotArea, scroll_area
from hsviewer.gui.settings import Settings
from hsviewer.state.jobs import JobHandlers

if TYPE_CHECKING:
    from hsviewer.core.library.store import Run
    from hsviewer.gui.job_wiring import Submit
    from hsviewer.state.model import ModelInfo

HIDDEN_MAP = "turbo"  # the notebook's 'rainbow'
SIGNED = "plasma"
DIFFERENCE_MAP = "CET-D1"  # blue-white-red as the image tab's residual: zero is white, not green
SCATTER_STEP = 10  # every 10th value, as in the notebook
HEATMAP_PERCENTILE = 95  # a few massive activations would otherwise wash out the rest
EMPTY_NOTE = "Press “Reduce layer and apply\nin forward pass” (Ctrl+R)\nto fill this panel"
PANEL_TIPS = {
    "Original HS": (
        "The hidden state the chosen layer outputs: one row per token, one column per embedding dimension. "
        "Colours stop at the 95th percentile of |value| so a few huge activations do not wash out the rest."
    ),
    "Reconstruction": (
        "The same matrix rebuilt from its k strongest components (the means added back), on the original's "
        "colour scale."
    ),
    "Difference": ("Original minus reconstruction, on the same scale: what the reduction threw away. White is zero."),
    "Original vs reconstruction": (
        "Every 10th value: original (x) against reconstructed (y). Points on the diagonal survive the "
        "reduction; the title's r is the correlation of all values."
    ),
    "U": ("Left singular vectors of the (centred) hidden state: one row per token, one column per component."),
    "Σ": (
        "Σ, the singular values on the diagonal, largest first: how strong each component is. The colour bar "
        "reads σ itself on a log scale (its ticks are powers of ten)."
    ),
    "Vᵀ": ("Right singular vectors: each row is one component's direction in embedding space."),
    "Singular-value spectrum": (
        "Singular values of the centred hidden state, log scale (pink, left), and the cumulative percent of "
        "variance kept (blue, right). A steep drop means few directions carry most of the variance; the red "
        "line is the k kept."
    ),
    "Reduction applied in the forward pass": (
        "The reduction put into the forward pass at the chosen layer (dashed line): at every layer, the norm "
        "of the hidden state's difference from the clean run. Zero before the layer; after it, see whether "
        "the later layers damp the change or amplify it."
    ),
}


class HiddenTab(QWidget):
    """Inputs on the left, the Part 2 and Part 3 figures on the right."""

    kinds = ("reduce", "intervene")  # the saved runs it draws (the Runs tab's Open); an intervention: its outcome
    error = Signal(str)

    def __init__(self, submit: Submit, recent_models: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._submit = submit
        self.result: Any = None  # the last HiddenReduction
        self.result_text: str | None = None  # the text it ran on (None: not known)
        self.result_header = ""  # the saved run's name, when the result is one
        self._refit = False  # the heatmaps were drawn while the tab was hidden
        self._fit_soon = QTimer(self)  # a child: it dies with the tab, never firing after it
        self._fit_soon.setSingleShot(True)
        self._fit_soon.setInterval(0)
        self._fit_soon.timeout.connect(self._fit_heatmaps)
        self.model: ModelInfo | None = None
        self.picker = ModelPicker(recent_models)
        self._build_inputs()
        self._build_plots()
        inputs_beside_plots(self, self.inputs, scroll_area(self.graphics), 330)

    def _build_inputs(self) -> None:
        self.inputs = QWidget()
        self.model_status = QLabel("No model loaded yet")
        self.model_status.setWordWrap(True)
        self.text = QPlainTextEdit()
        self.text.setPlaceholderText("Text to run through the model")
        self.text.setToolTip("The text run through the model; each token is one row of the hidden state")
        open_text = QPushButton("Open text…")
        open_text.setToolTip("Read the text from a .txt or .md file")
        open_text.clicked.connect(self._open_text)
        default = QPushButton("Default text")
        default.setToolTip("Put back the built-in sample text")
        default.clicked.connect(self.set_default_text)
        text_buttons = QHBoxLayout()
        text_buttons.addWidget(open_text)
        text_buttons.addWidget(default)
        self.layer = QSpinBox()
        self.layer.setRange(0, 0)
        self.layer.setToolTip("Which block's output to reduce: 0 is the first transformer block")
        self.form = ReductionForm(threshold=95.0)
        self.run_button = QPushButton("Reduce layer and apply in forward pass")
        self.run_button.setShortcut(QKeySequence("Ctrl+R"))
        self.run_button.setToolTip(
            "Reduce the layer's hidden state, then rerun the model with the reduction in its place (Ctrl+R)"
        )
        self.run_button.clicked.connect(self.run)
        for changed in (
            self.text.textChanged,
            self.layer.valueChanged,
            self.form.mode.currentIndexChanged,
            self.form.threshold.valueChanged,
            self.form.components.valueChanged,
            self.form.centering.currentIndexChanged,
        ):
            changed.connect(self.mark_out_of_date)
        self.intervention = InterventionBox(self._submit, self.text.toPlainText, self.layer.value)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hover = plots.ReadoutLabel("Hover a heatmap to read its values")
        form = QFormLayout(self.inputs)
        form.addRow(QLabel("<b>Model</b>"))
        form.addRow(self.picker)
        form.addRow(self.model_status)
        form.addRow(QLabel("<b>Text</b> (also used by the Layer sweep)"))
        form.addRow(self.text)
        form.addRow(text_buttons)
        form.addRow("Layer", self.layer)
        form.addRow(self.form)
        form.addRow(self.run_button)
        form.addRow(self.summary)
        form.addRow(self.intervention)
        form.addRow(self.hover)

    def _build_plots(self) -> None:
        self.graphics = PlotArea(max_columns=3)
        top = middle = bottom = self.graphics  # the panels flow in reading order

        def matrix(title: str, colormap: str, col: int) -> plots.Heatmap:  # a token-by-dimension heatmap
            return plots.Heatmap(top, title, colormap, "Embedding dimension", "Token", labelled_rows=True, col=col)

        self.original = matrix("Original HS", HIDDEN_MAP, 0)
        self.reconstructed = matrix("Reconstruction", HIDDEN_MAP, 1)
        self.difference = matrix("Difference", DIFFERENCE_MAP, 2)
        self.heatmaps = {"Original": self.original, "Reconstruction": self.reconstructed, "Difference": self.difference}
        plots.link_levels(list(self.heatmaps.values()))
        plots.link_views(list(self.heatmaps.values()))
        for name, heatmap in self.heatmaps.items():
            heatmap.describe = self._describer(name)
            if heatmap is not self.original:
                heatmap.plot.setXLink(self.original.plot)
                heatmap.plot.setYLink(self.original.plot)
        self.scatter = plots.line_plot(middle, "Original vs reconstruction", "Original HS", "Reconstructed HS", col=0)
        self.scatter_points = pg.ScatterPlotItem(size=5, pen=pg.mkPen("k", width=0.5), brush=(180, 230, 180, 80))
        self.scatter.addItem(self.scatter_points)
        self.u = plots.Heatmap(middle, "U", SIGNED, "component", "Token", labelled_rows=True, col=1)
        self.sigma = plots.sigma_map(middle, col=2)
        self.vh = plots.Heatmap(middle, "Vᵀ", SIGNED, "Embedding dimension", "component", col=3)
        self.spectrum = plots.SpectrumPlot(bottom, "Singular-value spectrum (centred)", col=0)
        self.spectrum.k_line.setMovable(False)
        self.spike = SpikeMarker(self.original)
        self.measure_lines = MeasureLines(self.spectrum)
        self.norms = plots.line_plot(
            bottom, "Reduction applied in the forward pass", "Layer", "Norm of difference", col=1
        )
        self.norm_curve = self.norms.plot(**plots.markers(plots.PINK, "h", 12))
        self.norms.addItem(pg.InfiniteLine(0, angle=0, pen=pg.mkPen("k", style=Qt.PenStyle.DotLine)))
        self.layer_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("k", style=Qt.PenStyle.DashLine))
        self.norms.addItem(self.layer_line)
        self.graphics.set_stretch([h.plot for h in self.heatmaps.values()], 4)
        self.graphics.set_stretch([self.scatter, self.u.plot, self.sigma.plot, self.vh.plot], 3)
        self.graphics.set_stretch([self.spectrum.plot, self.norms], 3)
        plots.set_tooltips(self.plots(), PANEL_TIPS)
        self.empty_notes = [plots.empty_note(plot, EMPTY_NOTE) for plot in self.plots().values()]

    def plots(self) -> dict[str, Any]:
        """The exportable panels by their titles (a title that changes with the result goes on from these)."""
        return {
            "Original HS": self.original.plot,
            "Reconstruction": self.reconstructed.plot,
            "Difference": self.difference.plot,
            "Original vs reconstruction": self.scatter,
            "U": self.u.plot,
            "Σ": self.sigma.plot,
            "Vᵀ": self.vh.plot,
            "Singular-value spectrum": self.spectrum.plot,
            "Reduction applied in the forward pass": self.norms,
        }

    def set_default_text(self) -> None:
        from hsviewer.core.resources import default_text

        self.text.setPlainText(default_text())

    def _open_text(self) -> None:
        from hsviewer.core import read_text_file

        path, _ = QFileDialog.getOpenFileName(self, "Open text", "", "Text files (*.txt *.md);;All files (*)")
        if path:
            try:
                self.text.setPlainText(read_text_file(path))
            except HsviewerError as e:
                self.error.emit(str(e))

    def set_model(self, info: ModelInfo) -> None:
        """A new model is loaded: its layers bound the layer selector."""
        self.model = info
        self.layer.setMaximum(info.n_layers - 1)
        self.model_status.setText(f"{info.name}: {info.n_layers} layers, {info.hidden_size} dimensions, {info.device}")
        self.picker.combo.setCurrentText(info.source)
        self.mark_out_of_date()

    def mark_out_of_date(self) -> None:
        """Say above the summary when the plots no longer show what the inputs ask for."""
        if self.result is None:
            return
        note = "<b>Out of date:</b> the model, text, layer or reduction changed; press Reduce (Ctrl+R).<br>"
        header = f"{self.result_header}<br>" if self.result_header else ""
        self.summary.setText(f"{note if self.inputs_differ() else ''}{header}{self._summary(self.result)}")

    def inputs_differ(self) -> bool:
        """Whether the model, text, layer or reduction asked for is not what the result was made with."""
        r = self.result
        try:
            asked = self.form.reduction()
        except HsviewerError:
            return True
        return (
            (self.model is not None and self.model.name != r.model)
            or (self.result_text is not None and self.text.toPlainText() != self.result_text)
            or self.layer.value() != r.layer
            or (asked.threshold, asked.fixed_components, asked.centering)
            != (r.reduction.threshold, r.reduction.fixed_components, r.reduction.centering)
        )

    def run(self) -> None:
        """Queue reduce_layer for the chosen layer, text and reduction."""
        try:
            spec = ReduceSpec(layer=self.layer.value(), reduction=self.form.reduction())
        except HsviewerError as e:
            self.error.emit(str(e))
            return
        self.summary.setText(f"Reducing layer {spec.layer}…")
        text = self.text.toPlainText()
        job = hidden_job(text, spec)
        ended = self._ended_without_result
        returned = functools.partial(self._returned, text)
        self._submit(job, JobHandlers(on_result=returned, on_failed=ended, on_cancelled=ended))

    def _returned(self, text: str, result: Any) -> None:
        self.result_text, self.result_header = text, ""
        self.show_result(result)

    def _ended_without_result(self, *_: object) -> None:
        self.summary.setText(self._summary(self.result) if self.result else "No result yet.")

    def show_result(self, r: Any) -> None:
        """Draw every panel from one reduce_layer result (from the worker)."""
        self.result = r
        for note in self.empty_notes:
            note.hide()
        for plot in self.plots().values():  # the notes' fixed range gives way to the data's
            plot.enableAutoRange()
        levels = plots.symmetric_levels(r.original, percentile=HEATMAP_PERCENTILE)
        self.original.set_data(r.original, levels, r.tokens)
        self.reconstructed.set_data(r.reconstruction, levels, r.tokens)
        self.difference.set_data(r.difference, levels, r.tokens)
        plots.set_title(self.original.plot, f"Original HS (layer {r.layer})")
        plots.set_title(self.reconstructed.plot, f"Reconstruction (k = {r.components}, {r.variance_kept:.2f}% var.)")
        self._draw_scatter(r.original, r.reconstruction, r.correlation)
        self.u.set_data(r.u, plots.symmetric_levels(r.u, percentile=95), r.tokens)
        plots.show_sigma(self.sigma, r.s)
        self.vh.set_data(r.vh, plots.symmetric_levels(r.vh, percentile=95))
        from hsviewer.core.linalg.lowrank import cumulative_percent

        self.spectrum.set_spectrum(r.s, cumulative_percent(r.s), r.components)
        self.spike.set(r.measures.massive_activation, r.tokens)
        self.measure_lines.set(r.measures)
        centred = "not centred" if r.reduction.centering == "none" else "centred"  # short: one line at 1024x700
        plots.set_title(self.spectrum.plot, f"Singular-value spectrum ({centred})")
        self.norm_curve.setData(np.arange(r.n_layers), r.diff_norms)
        self.layer_line.setValue(r.layer)
        plots.set_title(self.norms, f"Reduction applied in the forward pass (at layer {r.layer})")
        self.mark_out_of_date()
        self._refit = not self.isVisible()
        self._fit_soon.start()  # once laid out, as the window may not be yet

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._refit:
            self._refit = False
            self._fit_soon.start()

    def _fit_heatmaps(self) -> None:
        """Show all of each matrix: linked views drawn before their final size (a run restored at
        start) keep only part of the rows."""
        for heatmap in (*self.heatmaps.values(), self.u, self.sigma, self.vh):
            heatmap.plot.autoRange(padding=0)

    def show_run(self, run: Run, set_inputs: bool = True) -> None:
        """Redraw a run saved in the library, without computing; set_inputs: put its text, layer and
        reduction in the inputs, so that a re-run repeats it (at start the inputs stay as they were saved).
        An intervention shows its outcome under its button, the reduction's panels left as they are."""
        if run.info.kind == "intervene":
            self.intervention.show_run(run)
            return
        result = run.result()
        texts = run.provenance.get("texts")
        text = texts[0] if isinstance(texts, list) and len(texts) == 1 and isinstance(texts[0], str) else None
        self.result = None  # no summary while the inputs change
        if set_inputs:
            if text is not None:
                self.text.setPlainText(text)
            self.layer.setMaximum(max(self.layer.maximum(), result.layer))
            self.layer.setValue(result.layer)
            self.form.set_reduction(result.reduction)
        self.result_text, self.result_header = text, f"<b>{run.info.name}</b> (saved {run.info.when})"
        self.show_result(result)

    def exportable(self) -> tuple[Any, list[list[Any]]] | None:
        """The result and its CSV rows, for File > Export data."""
        from hsviewer.core.analyses.reduce.kind import REDUCE

        return None if self.result is None else (self.result, REDUCE.table(self.result))

    def _draw_scatter(self, original: np.ndarray, reconstruction: np.ndarray, correlation: float) -> None:
        x = original.ravel()[::SCATTER_STEP]
        y = reconstruction.ravel()[::SCATTER_STEP]
        self.scatter_points.setData(x, y)
        self.scatter.getViewBox().updateAutoRange()  # now, not at the next paint: its range was the empty note's
        plots.set_title(self.scatter, f"Original vs reconstruction, r = {correlation:.5f}")

    @staticmethod
    def _summary(r: Any) -> str:
        lines = [
            f"Layer {r.layer}: {len(r.tokens)} tokens × {r.original.shape[1]} dimensions",
            f"Kept {r.components} of {len(r.s)} components ({r.variance_kept:.2f}% of variance, {r.reduction.centering}"
            " centering)",
            f"Rank: original {r.rank_original}, reconstruction {r.rank_reconstruction} (k, plus the means added back)",
            f"Correlation r = {r.correlation:.5f}",
            f"Loss: clean {r.clean_loss:.4f}, reduced {r.loss:.4f}; KL {r.kl_divergence:.4g} nats",
            _measures_line(r.measures),
        ]
        return "<br>".join(lines + [f"<i>{w}</i>" for w in r.warnings])

    def _describer(self, name: str) -> Callable[[int, int, float], None]:
        def describe(row: int, col: int, value: float) -> None:
            self.hover.setText(self.hover_text(name, row, col, value))

        return describe

    def hover_text(self, name: str, row: int, col: int, value: float) -> str:
        r = self.result
        token = repr(r.tokens[row]) if r and row < len(r.tokens) else "?"
        layer = r.layer if r else "?"
        return f"{name}: layer {layer}, token {row} {token}, dimension {col}: {value:.4g}"

    def save_settings(self, settings: Settings) -> None:
        settings.set("hidden/text", self.text.toPlainText())
        settings.set("hidden/layer", self.layer.value())
        self.form.save(settings, "hidden")

    def restore_settings(self, settings: Settings) -> None:
        text = settings.get("hidden/text", "", str)
        if text.strip():
            self.text.setPlainText(text)
        else:
            self.set_default_text()
        self.layer.setMaximum(1000)
        self.layer.setValue(settings.get("hidden/layer", 4, int))
        self.form.restore(settings, "hidden")


def _measures_line(m: Any) -> str:
    """The threshold-free measures: how spread the spectrum is, and the largest activation."""
    spike = m.massive_activation
    return (
        f"Participation ratio {m.participation_ratio:.2f}, effective rank {m.effective_rank:.2f}; "
        f"largest |activation| {spike.ratio:.0f}× the median (token {spike.token}, dimension {spike.dimension})"
    )
