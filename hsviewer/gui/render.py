"""Headless pyqtgraph figures for the command line (offscreen Qt, no window)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hsviewer.core.library.writing import write_atomic


def spectrum_png(path: str | Path, s: np.ndarray, cumulative: np.ndarray, k: int) -> Path:
    """Singular values (log scale) and cumulative percent variance, with k marked."""
    import pyqtgraph as pg
    from pyqtgraph.exporters import ImageExporter

    offscreen_app()
    pg.setConfigOptions(background="w", foreground="k", antialias=True)
    layout = pg.GraphicsLayoutWidget(size=(900, 600))
    top = layout.addPlot(row=0, col=0, title="Singular values", labels={"left": "σ", "bottom": "index"})
    top.setLogMode(y=True)
    index = np.arange(len(s))
    positive = s > 0
    top.plot(index[positive], s[positive], pen="k", symbol="s", symbolSize=4, symbolBrush=(230, 180, 180))
    bottom = layout.addPlot(row=1, col=0, title="Cumulative variance", labels={"left": "%", "bottom": "components"})
    bottom.plot(index + 1, cumulative, pen=pg.mkPen("b", width=2))
    for plot in (top, bottom):
        plot.addLine(x=k, pen=pg.mkPen("r", style=pg.QtCore.Qt.PenStyle.DashLine))
    layout.show()
    pg.QtWidgets.QApplication.processEvents()
    exporter = ImageExporter(layout.scene())
    exporter.parameters()["width"] = 900
    try:
        return write_atomic(path, lambda tmp: exporter.export(str(tmp)))
    finally:
        layout.close()


def offscreen_app() -> None:
    """A QApplication that never opens a window, even where a display exists."""
    from pyqtgraph.Qt import QtWidgets

    if QtWidgets.QApplication.instance() is None:
        QtWidgets.QApplication(["hsviewer", "-platform", "offscreen"])


LEGEND_ROWS = 12  # entries a comparison's legend holds at most: past them, one line says how many more
LEGEND_LABEL = 28  # characters of a run's name in the legend (the CSV has it whole)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def legend_below(layout: Any, row: int, text_size: str = "8pt") -> Any:
    """A legend in a row of its own under the plots, so that it never covers a curve."""
    import pyqtgraph as pg

    holder = layout.addLayout(row=row, col=0)
    holder.setFixedHeight(0)  # until draw_comparison fills it
    legend = pg.LegendItem(offset=(60, 2), labelTextSize=text_size)
    legend.setParentItem(holder)
    return legend


def draw_comparison(curves_plot: Any, difference_plot: Any, comparison: Any, legend: Any) -> None:
    """The runs' curves (with their 95% bands where they have them) over relative depth, and below
    them each run's difference from the first; the same drawing in the app and in `hsviewer compare`.
    legend: a legend_below() the plots, naming each run once, in up to three columns; past
    LEGEND_ROWS runs it names the first ones and says how many more, so it never fills the figure."""
    import pyqtgraph as pg

    legend.clear()
    count = len(comparison.curves)
    named = count if count <= LEGEND_ROWS else LEGEND_ROWS - 1
    legend.setColumnCount(1 if count <= 4 else 2 if count <= 8 else 3)
    for plot in (curves_plot, difference_plot):
        plot.clear()
        plot.setLabel("bottom", "Relative depth (block / (blocks − 1))")
    curves_plot.setTitle(comparison.title)
    curves_plot.setLabel("left", comparison.title)
    reference = comparison.curves[0].label
    difference_plot.setTitle(f"Difference from {reference}")
    difference_plot.setLabel("left", "Difference")
    difference_plot.addItem(pg.InfiniteLine(0, angle=0, pen=pg.mkPen("k", style=pg.QtCore.Qt.PenStyle.DotLine)))
    for i, curve in enumerate(comparison.curves):
        color = PALETTE[i % len(PALETTE)]
        style = {"pen": pg.mkPen(color, width=2), "symbol": "o", "symbolSize": 6, "symbolBrush": color}
        label = curve.label if len(curve.label) <= LEGEND_LABEL else curve.label[: LEGEND_LABEL - 1] + "…"
        name = f"{label} ({curve.n_layers} blocks)"
        points = curve.points
        if points.low is not None and points.high is not None:
            low = curves_plot.plot(curve.depth, points.low, pen=pg.mkPen(color, width=0.5))
            high = curves_plot.plot(curve.depth, points.high, pen=pg.mkPen(color, width=0.5))
            band = pg.FillBetweenItem(low, high, brush=pg.mkBrush(color + "40"))
            curves_plot.addItem(band)
        line = curves_plot.plot(curve.depth, points.values, name=name, **style)
        if i < named:
            legend.addItem(line, name)
        if i > 0:
            difference_plot.plot(curve.depth, curve.difference, name=name, connect="finite", **style)
    if named < count:
        legend.addItem(pg.PlotDataItem(pen=None), f"… and {count - named} more runs (each named in the CSV)")
    for plot in (curves_plot, difference_plot):
        plot.setXRange(0, 1, padding=0.03)
    legend.updateSize()
    legend.parentItem().setFixedHeight(legend.boundingRect().height() + 6)


def comparison_writer(path: str | Path, comparison: Any) -> Callable[[Path], None]:
    """What writes the comparison's figure to a file (for write_all); .png or .svg by path's suffix."""
    from hsviewer.core.library.writing import export_suffix

    export_suffix(path, (".png", ".svg"), "A comparison")

    def write(tmp: Path) -> None:
        import pyqtgraph as pg

        offscreen_app()
        pg.setConfigOptions(background="w", foreground="k", antialias=True)
        layout = pg.GraphicsLayoutWidget(size=(1000, 800))
        plots = layout.addPlot(row=0, col=0), layout.addPlot(row=1, col=0)
        draw_comparison(*plots, comparison, legend_below(layout, 2))
        export_shown(layout, tmp)

    return write


def export_shown(layout: Any, path: Path) -> None:
    """Show the offscreen layout so that it lays itself out, export it with the app's exporter
    (pyqtgraph's SVG one fails on Qt 6 paths), and close it whatever happens."""
    import pyqtgraph as pg

    from hsviewer.gui.figure_export import export_figure

    layout.show()
    pg.QtWidgets.QApplication.processEvents()
    try:
        export_figure(layout.ci, path)
    finally:
        layout.close()
