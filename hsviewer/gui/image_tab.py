"""Image SVD tab (notebook Part 1): the SVD of a picture and its rank-k reconstruction, live."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from hsviewer.core.linalg.lowrank import components_for_threshold
from hsviewer.gui import plots
from hsviewer.gui.jobs import image_job
from hsviewer.gui.plot_area import PlotArea, scroll_area
from hsviewer.gui.settings import Settings
from hsviewer.state.jobs import JobHandlers

if TYPE_CHECKING:
    from hsviewer.core.analyses.image.run import ImageSVD
    from hsviewer.gui.job_wiring import Submit

GRAY = "CET-L1"
SIGNED = "plasma"
PANEL_TIPS = {
    "Original image": ("The picture as a matrix of grey values (rows × columns): the matrix the SVD takes apart."),
    "Reconstruction": (
        "The rank-k approximation U_k Σ_k V_kᵀ, built from the k strongest components only, on the original's"
        " grey scale. Its title says how much of the variance those k components keep."
    ),
    "Residual (original − reconstruction)": (
        "Original minus reconstruction: what the k components miss. White is zero, red where the original is "
        "brighter, blue where it is darker. Fewer edges left here means a better reconstruction."
    ),
    "U": (
        "Left singular vectors: one column per component, one row per image row. Column i says how much each "
        "row of the picture uses component i."
    ),
    "Σ": (
        "Σ, the singular values on the diagonal, largest first: how strong each component is. The colour bar "
        "reads σ itself on a log scale (its ticks are powers of ten)."
    ),
    "Vᵀ": (
        "Right singular vectors: one row per component, one column per image column. Row i is the pattern "
        "across the columns that component i adds."
    ),
    "Singular-value spectrum": (
        "Singular values σ (pink, log scale, left axis) and the cumulative percent of variance the first k "
        "keep (blue, right axis). A steep drop means few components carry the picture. Drag the red line to "
        "set k."
    ),
}


class ImageTab(QWidget):
    """Controls above a grid of panels; the reconstruction follows the k slider from the cached SVD."""

    open_file_requested = Signal()
    open_url_requested = Signal()
    reconstructed = Signal(int)  # k, after the panels show it

    def __init__(self, submit: Submit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._submit = submit
        self.result: ImageSVD | None = None
        self.source = ""  # the image shown: the last one whose SVD worked
        # image jobs submitted and not finished, with their source; keyed as sender() gives them back, a QObject
        self._requests: dict[QObject, str] = {}
        self._asked_downsample = 0  # the downsample of the last image asked for
        self._shown_k = 0
        self._build_controls()
        self._build_plots()
        layout = QVBoxLayout(self)
        layout.addLayout(self.controls)
        layout.addWidget(self.info)
        layout.addWidget(scroll_area(self.graphics), 1)

    def _build_controls(self) -> None:
        open_file = QPushButton("Open image…")
        open_file.setToolTip("Open a picture file (Ctrl+O); it is shown and decomposed in grey")
        open_file.clicked.connect(self.open_file_requested)
        open_url = QPushButton("Open URL…")
        open_url.setToolTip("Download a picture from a web address (Ctrl+U)")
        open_url.clicked.connect(self.open_url_requested)
        self.downsample = QSpinBox()
        self.downsample.setRange(1, 16)
        self.downsample.setValue(2)
        self.downsample.setPrefix("downsample ")
        self.downsample.setToolTip("Shrink the picture by this factor before its SVD (faster); Enter reloads it")
        # editingFinished fires on Enter and again on focus loss (a dialog opening): reload() loads once per value.
        self.downsample.editingFinished.connect(self.reload)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(1, 1)
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 1)
        self.k_spin.setPrefix("k = ")
        for widget in (self.slider, self.k_spin):
            widget.setToolTip("k: how many singular components the reconstruction keeps (or drag the red line)")
        self.variance = QDoubleSpinBox()
        self.variance.setRange(0.01, 100.0)
        self.variance.setDecimals(2)
        self.variance.setValue(98.0)
        self.variance.setSuffix(" % variance")
        self.variance.setToolTip("Press Enter to set k to the fewest components keeping this much variance")
        self.slider.valueChanged.connect(self.set_k)
        self.k_spin.valueChanged.connect(self.set_k)
        # editingFinished fires on every focus loss too: only a value the user typed or stepped is a new
        # target; the rounded percent the box shows for k, applied again, would raise k by one each time.
        # The target kept is the exact percent of the k shown, for the next image and the next start.
        self._variance_typed = False
        self._variance_target = self.variance.value()
        self.variance.valueChanged.connect(self._variance_edited)
        self.variance.editingFinished.connect(self._variance_set)
        self.controls = QHBoxLayout()
        for control in (open_file, open_url, self.downsample):
            self.controls.addWidget(control)
        self.controls.addWidget(QLabel("Components:"))
        self.controls.addWidget(self.slider, 1)
        self.controls.addWidget(self.k_spin)
        self.controls.addWidget(self.variance)
        self.info = QLabel("Loading the image…")
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info.setWordWrap(True)  # a long path or URL must not widen the window past a small screen

    def _build_plots(self) -> None:
        self.graphics = PlotArea(max_columns=3)
        top = middle = self.graphics  # the panels flow in reading order
        self.original = plots.Heatmap(top, "Original image", GRAY, "column", "row", col=0)
        self.reconstruction = plots.Heatmap(top, "Reconstruction", GRAY, "column", "row", col=1)
        self.residual = plots.Heatmap(top, "Residual (original − reconstruction)", "CET-D1", "column", "row", col=2)
        plots.link_levels([self.original, self.reconstruction])
        plots.share_range([self.original, self.reconstruction, self.residual])
        self.u = plots.Heatmap(middle, "U", SIGNED, "component", "row", col=0)
        self.sigma = plots.sigma_map(middle, col=1)
        self.vh = plots.Heatmap(middle, "Vᵀ", SIGNED, "column", "component", col=2)
        self.spectrum = plots.SpectrumPlot(self.graphics, "Singular-value spectrum")
        self.graphics.make_wide(self.spectrum.plot)
        # A bound method, not a lambda: PySide6 6.12 crashes collecting a lambda that holds self.
        self.spectrum.k_line.sigPositionChanged.connect(self._k_line_moved)
        self.graphics.set_stretch([self.original.plot, self.reconstruction.plot, self.residual.plot], 5)
        self.graphics.set_stretch([self.u.plot, self.sigma.plot, self.vh.plot, self.spectrum.plot], 3)
        plots.set_tooltips(self.plots(), PANEL_TIPS)

    def plots(self) -> dict[str, Any]:
        """The exportable panels by name."""
        return {
            "Original image": self.original.plot,
            "Reconstruction": self.reconstruction.plot,  # its title goes on with k
            "Residual (original − reconstruction)": self.residual.plot,
            "U": self.u.plot,
            "Σ": self.sigma.plot,
            "Vᵀ": self.vh.plot,
            "Singular-value spectrum": self.spectrum.plot,
        }

    def open(self, source: str) -> None:
        """Start the SVD of an image file or URL in the worker.

        `source` becomes the tab's image only once its SVD is drawn: a failed open leaves the last good one.
        """
        source = str(source)
        self._asked_downsample = self.downsample.value()
        self.info.setText(f"Computing the SVD of {source}…")
        job = image_job(source, self._asked_downsample, self.variance_target())
        self._requests[job] = source
        ended = self._ended_without_result
        handlers = JobHandlers(
            on_result=self.show_result, on_failed=ended, on_cancelled=ended, on_finished=self._forget
        )
        self._submit(job, handlers)

    def reload(self) -> None:
        """The current image again, when the downsample differs from the one last asked for."""
        if self.source and self.downsample.value() != self._asked_downsample:
            self.open(self.source)

    def _forget(self) -> None:
        self._requests.pop(self.sender(), None)

    def _ended_without_result(self, *_: object) -> None:
        """A failed or cancelled open: the info line describes the image still shown."""
        if self.result is None:
            self.info.setText("No image yet: open a file or a URL.")
        else:
            self._show_info(self.result, self._shown_k)

    def show_result(self, svd: ImageSVD) -> None:
        """Draw a new image's SVD (from the worker) and its reconstruction at the chosen k."""
        self.source = self._requests.get(self.sender(), svd.source)
        self.result = svd
        levels = plots.span_levels(svd.image)
        self.original.set_data(svd.image, levels)
        self.reconstruction.set_data(svd.image, levels)
        self.u.set_data(svd.u, plots.symmetric_levels(svd.u, percentile=90))
        plots.show_sigma(self.sigma, svd.s)
        self.vh.set_data(svd.vh, plots.symmetric_levels(svd.vh, percentile=90))
        self.spectrum.set_spectrum(svd.s, svd.cumulative_percent, svd.components)
        for widget in (self.slider, self.k_spin):
            widget.blockSignals(True)
            widget.setRange(1, len(svd.s))
            widget.blockSignals(False)
        self._shown_k = 0
        self.set_k(svd.components)

    def set_k(self, k: int) -> None:
        """Show the rank-k reconstruction: one small matrix product on the cached SVD."""
        if self.result is None or k == self._shown_k:
            return
        svd = self.result
        k = min(max(int(k), 1), len(svd.s))
        self._shown_k = k
        for widget in (self.slider, self.k_spin, self.spectrum.k_line):
            widget.blockSignals(True)
            widget.setValue(k)
            widget.blockSignals(False)
        recon = svd.preview(k)
        self.reconstruction.image.setImage(recon, autoLevels=False)
        residual = svd.image - recon
        self.residual.set_data(residual, plots.symmetric_levels(residual[::4, ::4]))
        kept = svd.variance_kept(k)
        plots.set_title(self.reconstruction.plot, f"Reconstruction, k = {k} ({kept:.2f}% var.)")
        self.variance.blockSignals(True)  # the box says what the k shown keeps, not a stale target
        self.variance.setValue(kept)
        self.variance.blockSignals(False)
        self._variance_typed = False
        self._variance_target = kept
        self._show_info(svd, k)
        self.reconstructed.emit(k)

    def _show_info(self, svd: ImageSVD, k: int) -> None:
        kept = svd.variance_kept(k)
        self.info.setText(
            f"{self.source}  ·  {svd.image.shape[1]} × {svd.image.shape[0]} pixels  ·  k = {k} of {len(svd.s)}  ·  "
            f"{kept:.2f}% of variance kept  ·  rank of original {svd.rank}, of reconstruction "
            f"{svd.reconstruction_rank(k)}  ·  Frobenius error {svd.frobenius_error(k):.4g}"
            + (f"  ·  colour image ({svd.colour}) shown in greyscale (luma)" if svd.colour else "")
            + "".join(f"  ·  {w}" for w in svd.warnings)
        )

    def _k_line_moved(self, line: Any) -> None:
        self.set_k(round(line.value()))

    def variance_target(self) -> float:
        """The percent of variance k is chosen for: the one typed, else exactly what the k shown keeps."""
        return self.variance.value() if self._variance_typed else self._variance_target

    def _variance_edited(self) -> None:
        self._variance_typed = True

    def _variance_set(self) -> None:
        if self.result is not None and self._variance_typed:
            self._variance_typed = False
            self.set_k(components_for_threshold(self.result.s, self.variance.value()))

    def exportable(self) -> tuple[Any, list[list[Any]]] | None:
        """The result and its CSV rows, for File > Export data."""
        from hsviewer.core.analyses.image.kind import IMAGE

        return None if self.result is None else (self.result, IMAGE.table(self.result))

    def current_reconstruction(self) -> np.ndarray | None:
        return None if self.result is None else self.reconstruction.image.image

    def save_settings(self, settings: Settings) -> None:
        settings.set("image/last", self.source)
        settings.set("image/downsample", self.downsample.value())
        settings.set("image/variance", self.variance_target())

    def restore_settings(self, settings: Settings) -> None:
        self.downsample.setValue(settings.get("image/downsample", 2, int))
        self._variance_target = settings.get("image/variance", 98.0, float)
        self.variance.blockSignals(True)
        self.variance.setValue(self._variance_target)
        self.variance.blockSignals(False)
        self._variance_typed = False
