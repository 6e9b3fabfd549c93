"""The threshold-free measures drawn where they apply: the massive activation ringed on the
hidden-state heatmap, and the participation ratio and effective rank as lines on the spectrum
beside k (each is a number of components, as k is)."""

from __future__ import annotations

from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt

from hsviewer.core.linalg.measures import MassiveActivation, SpectrumMeasures
from hsviewer.gui import plots

RING = "#e0118a"  # magenta: in none of the heatmap's turbo colours
PARTICIPATION_PEN = "#2ca02c"
EFFECTIVE_PEN = "#ff7f0e"


def spike_text(spike: MassiveActivation, tokens: Sequence[str]) -> str:
    token = repr(tokens[spike.token]) if spike.token < len(tokens) else "?"
    return (
        f"Largest |activation| = {abs(spike.value):.4g} ({spike.value:+.4g}), ×{spike.ratio:.0f} the median "
        f"|activation|, token {spike.token} {token}, dimension {spike.dimension}"
    )


class SpikeMarker:
    """A ring on the cell (dimension, token) of the largest |activation|, its numbers in a tooltip.

    Drawn on the panel, above its view box, not in it: the view box clips what it holds to its edges,
    and cut the ring in half on the first token or the last dimension. It follows every zoom and pan.
    """

    def __init__(self, heatmap: plots.Heatmap) -> None:
        self.text = ""
        self.cell: QPointF | None = None  # the ringed cell's centre, in the heatmap's coordinates
        self.plot = heatmap.plot
        self.item = pg.ScatterPlotItem(
            size=18, symbol="o", pen=pg.mkPen(RING, width=2.5), brush=None, hoverable=True, tip=self._tip
        )
        self.item.setParentItem(self.plot)
        self.item.setZValue(10)  # above the view box and its image
        self.plot.getViewBox().sigTransformChanged.connect(self._follow)
        self.plot.getViewBox().geometryChanged.connect(self._follow)  # moved or resized in its panel

    def set(self, spike: MassiveActivation, tokens: Sequence[str]) -> None:
        self.text = spike_text(spike, tokens)
        self.cell = QPointF(spike.dimension + 0.5, spike.token + 0.5)  # cell (row, col) spans [col, col + 1]
        self.item.setToolTip(self.text)
        self._follow()

    def _follow(self, *changed: object) -> None:
        """The ring over its cell, in the panel's coordinates; none while the cell is out of view."""
        box = self.plot.getViewBox()
        if self.cell is None or not box.viewRect().contains(self.cell):
            self.item.setData([], [])
            return
        at = self.plot.mapFromScene(box.mapViewToScene(self.cell))
        self.item.setData([at.x()], [at.y()])

    def _tip(self, **point: object) -> str:
        return self.text


class MeasureLines:
    """Dashed lines at the participation ratio and the effective rank on a spectrum, labelled."""

    def __init__(self, spectrum: plots.SpectrumPlot) -> None:
        self.participation = self._line(spectrum, PARTICIPATION_PEN, 0.12)  # small: below the curves' start
        self.effective = self._line(spectrum, EFFECTIVE_PEN, 0.55)

    @staticmethod
    def _line(spectrum: plots.SpectrumPlot, colour: str, at: float) -> pg.InfiniteLine:
        line = pg.InfiniteLine(
            angle=90,
            movable=False,
            pen=pg.mkPen(colour, width=1.5, style=Qt.PenStyle.DashLine),
            label="",
            # pyqtgraph puts the label on the side of the line facing the view's centre: never off its edge
            labelOpts={"position": at, "color": colour, "fill": (255, 255, 255, 200), "anchors": [(0, 0.5), (1, 0.5)]},
        )
        spectrum.plot.addItem(line, ignoreBounds=True)
        return line

    def set(self, measures: SpectrumMeasures) -> None:
        for line, name, value in (
            (self.participation, "PR", measures.participation_ratio),
            (self.effective, "eff. rank", measures.effective_rank),
        ):
            line.setValue(value)
            line.label.setFormat(f"{name} {value:.1f}")
        self.participation.setToolTip(
            f"Participation ratio (Σs²)²/Σs⁴ = {measures.participation_ratio:.2f} components: how many the "
            "variance is spread over, no threshold needed"
        )
        self.effective.setToolTip(
            f"Effective rank exp(−Σ p log p), p = s/Σs, = {measures.effective_rank:.2f} components"
        )
