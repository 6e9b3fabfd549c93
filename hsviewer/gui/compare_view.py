"""Runs compared: their per-layer curves overlaid on relative depth, and each one's difference
from the first, with a metric selector and export as figure or CSV."""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from hsviewer.core.choices import METRICS
from hsviewer.core.errors import HsviewerError
from hsviewer.core.library.compare import Comparison, compare
from hsviewer.core.linalg.geometry import TWONN_MIN_POINTS
from hsviewer.gui import figure_export, plots
from hsviewer.gui.plot_area import PlotArea, scroll_area
from hsviewer.gui.render import draw_comparison, legend_below

METRIC_TIPS = {
    "loss_change": "Reduced loss minus the clean loss, per block",
    "kl": "KL divergence of the reduced run's next-token distribution from the clean one's",
    "components": "How many SVD components the threshold keeps at each block",
    "percent_rank": "Components kept as a percent of the hidden state's rank (tokens or dimensions, the fewer)",
    "hidden_diff": "Norm of the change in the last hidden state",
    "logit_diff": "Norm of the change in the logits",
    "participation_ratio": "Participation ratio (sum s^2)^2 / sum s^4 of the clean hidden state's centred spectrum",
    "effective_rank": "Effective rank exp(entropy of s / sum s) of the clean hidden state's centred spectrum",
    "anisotropy": "s1^2 / sum s^2: the share of the centred variance on the top direction",
    "twonn_dimension": "TwoNN intrinsic dimension of the tokens' vectors (needs 20 tokens or more)",
    "prompt_entropy": "Matrix entropy of the token Gram matrix's eigenvalues, in nats (Skean et al. 2025)",
    "prompt_entropy_normalised": "Prompt entropy over log(rank): 1 when spread evenly over every direction",
    "linearity": "Orthogonal Procrustes similarity to the next block's tokens: 1 when it is a rotation of this one",
}


def missing_note(comparison: Comparison) -> str:
    """Where a run has no value of the metric at any block (a run saved before hsviewer measured it), a
    sentence naming it, so that its missing curve is not read as a failure; else nothing."""
    missing = [c.label for c in comparison.curves if not np.isfinite(c.points.values).any()]
    if not missing:
        return ""
    why = "saved before hsviewer measured it"
    if comparison.metric == "twonn_dimension":
        why += f", or on a text under {TWONN_MIN_POINTS} tokens"
    title, names = escape(comparison.title, quote=False), escape(", ".join(missing), quote=False)
    return f"<br><b>{title}: not in {names}</b> ({why}): no curve for it."


class CompareView(QWidget):
    """The comparison of the runs given to show(); redrawn when the metric changes."""

    error = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs: list[Any] = []
        self.comparison: Comparison | None = None
        self.metric_box = QComboBox()
        for key, title in METRICS.items():
            self.metric_box.addItem(title, key)
            self.metric_box.setItemData(self.metric_box.count() - 1, METRIC_TIPS[key], Qt.ItemDataRole.ToolTipRole)
        # The longest title would set the window's minimum width: the box elides instead.
        self.metric_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.metric_box.setMinimumContentsLength(24)
        self.metric_box.setToolTip("What to compare, block by block")
        self.metric_box.currentIndexChanged.connect(self._redraw)
        export_figure = QPushButton("Export figure…")
        export_figure.setToolTip("Save the two panels as a PNG image or an SVG drawing")
        export_figure.clicked.connect(self._export_figure_dialog)
        export_csv = QPushButton("Export CSV…")
        export_csv.setToolTip(
            "Save every run's values per block, with relative depth and the difference from the first"
        )
        export_csv.clicked.connect(self._export_csv_dialog)
        self.note = QLabel("Select two runs or more and press Compare selected.")
        self.note.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Metric"))
        bar.addWidget(self.metric_box, 1)
        bar.addWidget(export_figure)
        bar.addWidget(export_csv)
        self.graphics = PlotArea(max_columns=1)
        self.curves = plots.line_plot(self.graphics, "Comparison", "Relative depth", "", row=0, col=0)
        self.differences = plots.line_plot(
            self.graphics, "Difference from the first run", "Relative depth", "", row=1, col=0
        )
        self.legend = legend_below(self.graphics, 2)
        self.curves.setToolTip(
            "Each run's per-layer curve of the chosen metric against relative depth, block / (blocks − 1), "
            "so models of different depths line up from 0 (first block) to 1 (last)"
        )
        self.differences.setToolTip(
            "Each run minus the first, the first interpolated between its blocks: above zero, that run "
            "changes more than the first at that depth"
        )
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.note)
        layout.addWidget(scroll_area(self.graphics), 1)

    def compare_runs(self, runs: list[Any]) -> None:
        """Compare these runs (library Runs), the first the reference."""
        self.runs = runs
        self._redraw()

    def renamed(self, info: Any) -> None:
        """A run was renamed (a library RunInfo): the legend and titles take its new name."""
        shown = [run for run in self.runs if run.info.id == info.id]
        for run in shown:
            run.info = info
        if shown:
            self._redraw()

    def set_metric(self, metric: str) -> None:
        self.metric_box.setCurrentIndex(list(METRICS).index(metric))

    def _redraw(self) -> None:
        if len(self.runs) < 2:
            return
        try:
            self.comparison = compare(self.runs, self.metric_box.currentData())
        except HsviewerError as e:
            self.comparison = None
            self.curves.clear()
            self.differences.clear()
            self.legend.clear()
            self.legend.parentItem().setFixedHeight(0)
            self.note.setText(str(e))
            self.error.emit(str(e))
            return
        draw_comparison(self.curves, self.differences, self.comparison, self.legend)
        plots.set_title(self.curves, self.comparison.title)
        plots.set_title(self.differences, f"Difference from {self.comparison.curves[0].label}")
        self.note.setText(
            "Relative depth is block / (blocks − 1). The differences are against the first run, "
            "interpolated linearly between its blocks." + missing_note(self.comparison)
        )

    def plots(self) -> dict[str, Any]:
        return {"Comparison": self.curves, "Differences": self.differences}

    def exportable(self) -> tuple[Any, list[list[Any]]] | None:
        return None if self.comparison is None else (self.comparison, self.comparison.rows())

    def _export_figure_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export comparison", "", "PNG image (*.png);;SVG drawing (*.svg)")
        if path:
            self._try(self.export_figure, path)

    def _export_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export comparison", "", "CSV table (*.csv)")
        if path:
            self._try(self.export_csv, path)

    def export_figure(self, path: str) -> None:
        self._need_comparison()
        figure_export.export_figure(self.graphics.ci, path, 2 if path.lower().endswith(".png") else 1)

    def export_csv(self, path: str) -> None:
        from hsviewer.core.library.writing import export_suffix, plain_write_errors, write_csv

        comparison = self._need_comparison()
        export_suffix(path, (".csv",), "A comparison's table")
        with plain_write_errors(path):
            write_csv(path, comparison.rows())

    def _need_comparison(self) -> Comparison:
        if self.comparison is None:
            raise HsviewerError("Nothing is compared yet: select two runs or more and press Compare selected.")
        return self.comparison

    def _try(self, action: Any, *args: Any) -> None:
        try:
            action(*args)
        except HsviewerError as e:
            self.error.emit(str(e))
