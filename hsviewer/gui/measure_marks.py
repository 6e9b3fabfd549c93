"""The threshold-free measures drawn where they apply: the massive activation ringed on the
hidden-state heatmap, and the participation ratio and effective rank as lines on the spectrum
beside k (each is a number of components, as k is)."""

from __future__ import annotations

from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt

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
    """A ring on the cell (dimension, token) of the largest |activation|, its numbers in a tooltip."""

    def __init__(self, heatmap: plots.Heatmap) -> None:
        self.text = ""
        self.item = pg.ScatterPlotItem(
            size=18, symbol="o", pen=pg.mkPen(RING, width=2.5), brush=None, hoverable=True, tip=self._tip
        )
        self.item.setZValue(10)  # above the image
        heatmap.plot.addItem(self.item, ignoreBounds=True)

    def set(self, spike: MassiveActivation, tokens: Sequence[str]) -> None:
        self.text = spike_text(spike, tokens)
        self.item.setData([spike.dimension + 0.5], [spike.token + 0.5])  # cell (row, col) spans [col, col + 1]
        self.item.setToolTip(self.text)

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
            labelOpts={"position": at, "color": colour, "fill": (255, 255, 255, 200), "anchors": [(0, 0.5), (0, 0.5)]},
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
