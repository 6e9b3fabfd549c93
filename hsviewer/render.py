"""Headless pyqtgraph figures for the command line (offscreen Qt, no window)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hsviewer.export import write_atomic


def spectrum_png(path: str | Path, s: np.ndarray, cumulative: np.ndarray, k: int) -> Path:
    """Singular values (log scale) and cumulative percent variance, with k marked."""
    import pyqtgraph as pg
    from pyqtgraph.exporters import ImageExporter

    _offscreen_app()
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


def _offscreen_app() -> None:
    """A QApplication that never opens a window, even where a display exists."""
    from pyqtgraph.Qt import QtWidgets

    if QtWidgets.QApplication.instance() is None:
        QtWidgets.QApplication(["hsviewer", "-platform", "offscreen"])
