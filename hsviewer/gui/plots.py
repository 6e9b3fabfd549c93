"""Shared pyqtgraph pieces: heatmaps with colour bars and hover read-outs, token axes, line plots
with legends below, titles that wrap, and a singular-value spectrum with its cumulative percent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's own from Python 3.11; mypy checks for 3.10

pg.setConfigOptions(imageAxisOrder="row-major", background="w", foreground="k", antialias=True)

PINK = (230, 180, 180)  # the notebook's marker face colours
BLUE = (180, 180, 230)
TITLE_SIZE = "11pt"
MIN_TITLE_SCALE = 0.72  # a title too long for its panel shrinks to this (11pt to 8pt) before it wraps
TITLE_COLUMNS = 6  # a PlotItem's columns: left axis, view box, right axis, a colour bar's gap and bar
MAX_TOKEN_CHARS = 14
VIEW_MIN_HEIGHT = 100  # a line plot's data area: room for four y ticks that do not run into each other


class Position(TypedDict, total=False):
    """Where a panel goes in its layout (addPlot's row and col): typed, so that no other keyword
    argument of a panel's maker can be filled from a position by mistake."""

    row: int
    col: int


def set_tooltips(panels: dict[str, Any], tips: dict[str, str]) -> None:
    """Each panel's tooltip by its name: what it shows and how to read it (a panel without one is a KeyError)."""
    for name, item in panels.items():
        item.setToolTip(tips[name])


def symmetric_levels(*arrays: np.ndarray, percentile: float = 99.0) -> tuple[float, float]:
    """(-m, m) with m the percentile of |values|: a diverging map centred on zero."""
    values = np.concatenate([np.abs(np.asarray(a, dtype=np.float64)).ravel() for a in arrays])
    values = values[np.isfinite(values)]
    top = float(np.percentile(values, percentile)) if values.size else 0.0
    top = top if top > 0 else 1.0
    return -top, top


def span_levels(array: np.ndarray, low: float = 0.0, high: float = 100.0) -> tuple[float, float]:
    """Levels from the low and high percentiles of the finite values."""
    values = np.asarray(array, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, [low, high]))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def token_label(token: str) -> str:
    """A token as an axis label: visible white space, trimmed to a few characters."""
    text = token.replace("\n", "⏎").replace("\t", "⇥").strip() or "␣"
    return text if len(text) <= MAX_TOKEN_CHARS else text[: MAX_TOKEN_CHARS - 1] + "…"


class ReadoutLabel(QtWidgets.QLabel):
    """A hover read-out of a fixed height (two lines), elided to fit: however long a token or value
    the text, the controls around it never move under the mouse."""

    LINES = 2

    def __init__(self, text: str = "", parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setFixedHeight(self.fontMetrics().lineSpacing() * self.LINES + 2 * self.margin() + 2)
        self.setMinimumWidth(1)  # the text never asks for width either
        self._full = ""
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(self.contentsRect().width(), 1)
        room = width * self.LINES - 2 * self.fontMetrics().averageCharWidth() * self.LINES  # wrap loses some
        elided = self.fontMetrics().elidedText(self._full, QtCore.Qt.TextElideMode.ElideRight, room)
        super().setText(elided)


class LabelAxis(pg.AxisItem):
    """An axis labelling the cells 0..n-1 (centred at i + 0.5) with strings (tokens, thresholds), as many as fit."""

    def __init__(self, orientation: str, **kwargs: Any) -> None:
        super().__init__(orientation, **kwargs)
        self.labels: list[str] = []

    def set_labels(self, labels: Sequence[str]) -> None:
        self.labels = [token_label(t) for t in labels]
        self.picture = None
        self.update()

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:
        if not self.labels:
            return super().tickValues(minVal, maxVal, size)
        minVal, maxVal = sorted((minVal, maxVal))  # an inverted axis gives them reversed
        first = max(0, int(np.ceil(minVal - 0.5)))
        last = min(len(self.labels) - 1, int(np.floor(maxVal - 0.5)))
        if last < first:
            return []
        metrics = QtGui.QFontMetrics(self.style.get("tickFont") or QtGui.QFont())
        if self.orientation in ("left", "right"):
            per_label = metrics.height() + 1
        else:
            per_label = max(metrics.horizontalAdvance(t) for t in self.labels[first : last + 1]) + 8
        step = max(1, int(np.ceil((last - first + 1) * per_label / max(size, 1.0))))
        return [(float(step), [i + 0.5 for i in range(first, last + 1, step)])]

    def tickStrings(self, values: list, scale: float, spacing: float) -> list[str]:
        if not self.labels:
            return super().tickStrings(values, scale, spacing)
        return [self.labels[int(v)] if 0 <= int(v) < len(self.labels) else "" for v in values]


class HoverImage(pg.ImageItem):
    """An ImageItem that reports the cell under the mouse."""

    sigHover = QtCore.Signal(int, int)  # row, column

    def hoverEvent(self, event: Any) -> None:
        if event.isExit() or self.image is None:
            return
        pos = event.pos()
        row, col = int(np.floor(pos.y())), int(np.floor(pos.x()))
        if 0 <= row < self.image.shape[0] and 0 <= col < self.image.shape[1]:
            self.sigHover.emit(row, col)


class Heatmap:
    """A matrix drawn in a plot with a colour bar; hovering calls describe(row, col, value)."""

    def __init__(
        self,
        layout: pg.GraphicsLayout,
        title: str,
        colormap: str,
        x_label: str,
        y_label: str,
        labelled_rows: bool = False,
        labelled_cols: bool = False,
        rows_down: bool = True,
        colorbar: bool = True,
        **position: Unpack[Position],
    ) -> None:
        axes = {}
        if labelled_rows:
            axes["left"] = LabelAxis("left")
        if labelled_cols:
            axes["bottom"] = LabelAxis("bottom")
        self.plot: pg.PlotItem = layout.addPlot(axisItems=axes, **position)
        set_title(self.plot, title)
        self.plot.setLabel("bottom", x_label)
        self.plot.setLabel("left", y_label)
        self.plot.invertY(rows_down)
        for side in ("left", "bottom"):  # cells are counted: never "Token (x0.001)"
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.image = HoverImage()
        self.image.setColorMap(pg.colormap.get(colormap))
        self.plot.addItem(self.image)
        self.bar: pg.ColorBarItem | None = None
        if colorbar:
            self.bar = pg.ColorBarItem(colorMap=pg.colormap.get(colormap), width=14, interactive=True)
            self.bar.setImageItem(self.image, insert_in=self.plot)
        self.describe: Callable[[int, int, float], None] | None = None
        self.image.sigHover.connect(self._hovered)

    def set_data(
        self, data: np.ndarray, levels: tuple[float, float], rows: Sequence[str] = (), cols: Sequence[str] = ()
    ) -> None:
        """New data and levels; rows and cols label the cells of labelled axes (tokens, say)."""
        self.image.setImage(np.asarray(data, dtype=np.float32), levels=levels, autoLevels=False)
        if self.bar is not None:
            self.bar.rounding = max((levels[1] - levels[0]) / 500, 1e-12)
            self.bar.setLevels(levels)
        for name, labels in (("left", rows), ("bottom", cols)):
            axis = self.plot.getAxis(name)
            if isinstance(axis, LabelAxis):
                axis.set_labels(labels)
        self.plot.autoRange(padding=0)

    def value(self, row: int, col: int) -> float:
        return float(self.image.image[row, col])

    def _hovered(self, row: int, col: int) -> None:
        if self.describe is not None:
            self.describe(row, col, self.value(row, col))


SIGMA_FLOOR = 1e-6  # singular values below this fraction of σ1 are rounding noise (a centred matrix's last)


SIGMA_DOT = 5  # pixels: Σ's diagonal drawn this thick, however many components share the panel's width


class SigmaMap(Heatmap):
    """Σ as a heatmap whose colour bar reads σ on a log scale (see show_sigma), its diagonal drawn over
    as squares SIGMA_DOT pixels wide in the same colours: 576 components in a 150-pixel panel left a
    diagonal under a pixel wide, and the panel looked white."""

    def __init__(self, layout: pg.GraphicsLayout, **position: Unpack[Position]) -> None:
        super().__init__(layout, "Σ", "viridis", "component", "component", **position)
        assert self.bar is not None
        self.bar.axis.enableAutoSIPrefix(False)  # no label: the bar's fixed width drew it over the ticks (tooltip)
        self.diagonal = pg.ScatterPlotItem(size=SIGMA_DOT, symbol="s", pen=None, pxMode=True)
        self.diagonal.setZValue(5)  # above the image
        self.plot.addItem(self.diagonal, ignoreBounds=True)
        self.log_sigma = np.zeros(0)
        self.bar.sigLevelsChanged.connect(self._colour_diagonal)

    def show_diagonal(self, log_sigma: np.ndarray) -> None:
        self.log_sigma = np.asarray(log_sigma, dtype=np.float64)
        centres = np.arange(len(self.log_sigma)) + 0.5
        self.diagonal.setData(centres, centres)
        self._colour_diagonal()

    def _colour_diagonal(self, *changed: object) -> None:
        """The squares in the colours the bar's levels give (it can be dragged)."""
        if not self.log_sigma.size or self.bar is None:
            return
        low, high = self.bar.levels()
        where = np.clip((self.log_sigma - low) / ((high - low) or 1.0), 0.0, 1.0)
        colours = pg.colormap.get("viridis").map(where, mode="qcolor")
        self.diagonal.setBrush([QtGui.QBrush(c) for c in colours])


def sigma_map(layout: pg.GraphicsLayout, **position: Unpack[Position]) -> SigmaMap:
    """Σ as a heatmap whose colour bar reads σ on a log scale: see show_sigma."""
    return SigmaMap(layout, **position)


def sigma_ticks(low: float, high: float) -> list[tuple[float, str]]:
    """Ticks at log10 positions labelled with σ itself: the powers of ten in range, or both ends when
    fewer than two are (pyqtgraph's own log axis labels every 2..9 within a decade, one over another)."""
    decades = range(int(np.ceil(low)), int(np.floor(high)) + 1)
    values = [float(v) for v in decades] if len(decades) >= 2 else [low, high]
    return [(v, f"{10**v:,.0f}" if 10**v >= 10 else f"{10**v:.2g}") for v in values]


def show_sigma(heatmap: SigmaMap, s: np.ndarray) -> None:
    """Σ coloured by log10 σ, from the smallest σ that is not noise up to σ1.

    σ1 is often 10^4 times the last σ: a linear bar either shows σ1 alone or cuts it off. Off the
    diagonal Σ is zero, which has no logarithm: drawn as blank (NaN), so the diagonal stands out.
    """
    s = np.asarray(s, dtype=np.float64)
    top = float(s.max()) if s.size and s.max() > 0 else 1.0
    floor = top * SIGMA_FLOOR
    shown = s[s >= floor]
    low = np.log10(float(shown.min())) if shown.size else np.log10(floor)
    high = np.log10(top)
    data = np.full((len(s), len(s)), np.nan)
    np.fill_diagonal(data, np.log10(np.maximum(s, floor)))
    levels = (low, high if high > low else low + 1.0)
    heatmap.set_data(data, levels)
    heatmap.show_diagonal(np.diag(data))
    assert heatmap.bar is not None
    heatmap.bar.axis.setTicks([sigma_ticks(*levels)])


def link_views(heatmaps: Sequence[Heatmap]) -> None:
    """Zooming or panning one map moves the others, so the same cells stay side by side."""
    first = heatmaps[0].plot
    for heatmap in heatmaps[1:]:
        heatmap.plot.setXLink(first)
        heatmap.plot.setYLink(first)
    same_title_height([h.plot for h in heatmaps])


def same_title_height(panels: Sequence[pg.PlotItem]) -> None:
    """One wrapped title must not make its panel's view shorter than the others' (see FreeWidthLabel)."""
    for plot in panels:
        free_title_width(plot)
    titles = [plot.titleLabel for plot in panels]
    for title in titles:
        title.peers = [t for t in titles if t is not title]


def share_range(heatmaps: Sequence[Heatmap]) -> None:
    """Pictures of one image side by side: each shows square pixels (aspect locked) and all show the
    same range, whichever is zoomed or panned.

    pyqtgraph's X and Y links map ranges through each view's own screen geometry and fight the
    aspect lock (one panel ends up squashed, showing other columns); here each change is copied.
    """
    boxes = [h.plot.getViewBox() for h in heatmaps]
    same_title_height([h.plot for h in heatmaps])  # the same size, so the same range shows square pixels in each
    copying = [False]

    def follow(source: pg.ViewBox, ranges: list, changed: Any) -> None:
        if copying[0]:
            return
        copying[0] = True
        try:
            for box in boxes:
                if box is not source:
                    box.setRange(xRange=ranges[0], yRange=ranges[1], padding=0)
        finally:
            copying[0] = False

    for box in boxes:
        box.setAspectLocked(True)
        box.sigRangeChanged.connect(follow)


def link_levels(heatmaps: Sequence[Heatmap]) -> None:
    """Dragging any one colour bar moves the others: the maps keep shared levels."""
    bars = [h.bar for h in heatmaps if h.bar is not None]

    def follow(source: pg.ColorBarItem) -> None:
        for bar in bars:
            if bar is not source:
                bar.setLevels(source.levels())

    for bar in bars:
        bar.sigLevelsChanged.connect(follow)


def set_title(plot: pg.PlotItem, title: str) -> None:
    plot.setTitle(title, size=TITLE_SIZE, bold=True)


class FreeWidthLabel(pg.LabelItem):
    """A title that asks for no width: panels side by side get the same width whatever their titles say,
    and a title longer than its panel is set a little smaller, then wraps onto more lines (its row grows)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.item.document().setDefaultTextOption(QtGui.QTextOption(QtCore.Qt.AlignmentFlag.AlignHCenter))

    def resizeEvent(self, event: Any) -> None:
        width = self.rect().width()
        self.item.setTextWidth(-1)
        self.item.setScale(1.0)
        natural = self.item.boundingRect().width()
        if 0 < width < natural:  # smaller type first, down to MIN_TITLE_SCALE; only then more lines
            scale = max(MIN_TITLE_SCALE, width / natural)
            self.item.setScale(scale)
            if natural * scale > width:
                self.item.setTextWidth(width / scale)
        super().resizeEvent(event)

    def updateMin(self) -> None:
        peers = getattr(self, "peers", [])  # titles kept at one height: panels showing one range side by side
        height = max([self.itemRect().height(), *(peer.itemRect().height() for peer in peers)])
        for label in (self, *peers):
            label.set_height(height)

    def set_height(self, height: float) -> None:
        self.setMinimumWidth(0)
        self.setMinimumHeight(height)
        self._sizeHint = {
            QtCore.Qt.SizeHint.MinimumSize: (0, height),
            QtCore.Qt.SizeHint.PreferredSize: (0, height),
            QtCore.Qt.SizeHint.MaximumSize: (-1, -1),
            QtCore.Qt.SizeHint.MinimumDescent: (0, 0),
        }
        plot = self.parentItem()
        if isinstance(plot, pg.PlotItem) and plot.titleLabel is self and self.maximumHeight() > 0:
            self.setMaximumHeight(height)  # PlotItem.setTitle fixes its title row at one line's 30 pixels
            plot.layout.setRowFixedHeight(0, max(height, 30))
        self.updateGeometry()


def free_title_width(plot: pg.PlotItem) -> None:
    """Give the plot a title that does not widen it (see FreeWidthLabel)."""
    old = plot.titleLabel
    if isinstance(old, FreeWidthLabel):
        return
    label = FreeWidthLabel(old.text, parent=plot, size=TITLE_SIZE, bold=True)
    plot.layout.removeItem(old)
    old.setParentItem(None)
    if old.scene() is not None:
        old.scene().removeItem(old)
    plot.layout.addItem(label, 0, 0, 1, TITLE_COLUMNS)  # over the whole panel, not the view box's column only
    plot.titleLabel = label
    if old.text:
        set_title(plot, old.text)


def line_plot(
    layout: pg.GraphicsLayout, title: str, x_label: str, y_label: str, **position: Unpack[Position]
) -> pg.PlotItem:
    plot = layout.addPlot(**position)
    set_title(plot, title)
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    for side in ("left", "bottom"):  # ticks in the unit the label names, never "KL (nats) (x0.001)"
        plot.getAxis(side).enableAutoSIPrefix(False)
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.getViewBox().setMinimumHeight(VIEW_MIN_HEIGHT)  # a legend below grows the panel, not squashes it
    return plot


def empty_note(plot: pg.PlotItem, text: str) -> pg.TextItem:
    """Grey text in the middle of a panel that has nothing to show yet, saying what fills it; the panel's
    range is set to hold it (empty axes from -400 to 400 said nothing)."""
    note = pg.TextItem(text, color="#555555", anchor=(0.5, 0.5))
    plot.addItem(note, ignoreBounds=True)
    note.setPos(0.5, 0.5)
    plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
    return note


def from_zero(plot: pg.PlotItem, top: float) -> None:
    """The y axis from a little below 0 to a little above `top` (at least 1): counts read against a 0
    tick (pyqtgraph leaves a tick at the very edge unlabelled), and a constant 1 is not the middle of
    a range around it."""
    top = max(float(top), 1.0)
    plot.setYRange(-0.06 * top, 1.08 * top, padding=0)


class BelowLegend(pg.LegendItem):
    """A legend in its plot's layout, under the x axis: it never covers the data, however many runs it
    lists (pyqtgraph's own legend floats over the view box). It asks for no width: it takes as many
    columns as the panel's width holds, and grows downwards instead."""

    def updateSize(self) -> None:
        self.updateGeometry()  # the plot's layout places and sizes it, from its own layout's hint

    def sizeHint(self, which: QtCore.Qt.SizeHint, constraint: QtCore.QSizeF | None = None) -> QtCore.QSizeF:
        hint = super().sizeHint(which, QtCore.QSizeF() if constraint is None else constraint)
        return QtCore.QSizeF(0, hint.height()) if which != QtCore.Qt.SizeHint.MaximumSize else hint

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Re-laid out from the event loop, not inside setGeometry: Qt calls that while tearing the scene
        # down too, and a layout changed then crashes the interpreter at exit.
        self._refit = QtCore.QTimer(self)
        self._refit.setSingleShot(True)
        self._refit.setInterval(0)
        self._refit.timeout.connect(self._fit_columns)
        self.geometryChanged.connect(self._refit.start)
        scale_with_exports(self)

    def _fit_columns(self) -> None:
        # the text's own width: a label's item is as wide as its column once laid out
        widths = [s.boundingRect().width() + label.item.boundingRect().width() + 16 for s, label in self.items]
        columns = max(1, min(len(widths), int(self.geometry().width() // max(widths, default=1))))
        if columns != self.columnCount:
            self.setColumnCount(columns)

    def mouseDragEvent(self, ev: Any) -> None:
        ev.ignore()  # dragging would unhook it from the layout


def scale_with_exports(legend: pg.LegendItem) -> pg.LegendItem:
    """A legend that is drawn through its parents' transforms: pyqtgraph's ignores them (a zoom leaves it
    alone), so a 2x PNG drew its text at 1x in its 2x place. In the plot's layout, or on a view box (not
    its zoomed child group), it has no transform to ignore but the export's."""
    legend.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, False)
    return legend


def legend_below(plot: pg.PlotItem, columns: int = 2, text_size: str = "8pt") -> BelowLegend:
    """Give the plot a legend under its x axis; curves added with a name join it (plot.legend)."""
    legend = BelowLegend(colCount=columns, labelTextSize=text_size, horSpacing=12)
    plot.layout.addItem(legend, 4, 1)
    plot.legend = legend
    return legend


def markers(brush: tuple[int, ...] | str, symbol: str = "h", size: int = 10, pen: Any = "k") -> dict[str, Any]:
    """Keyword arguments for a PlotDataItem drawn as the notebook's outlined markers."""
    return {"pen": pg.mkPen(pen, width=0.5), "symbol": symbol, "symbolSize": size, "symbolBrush": brush}


PERCENT_LABELS = ("Cumulative % variance", "Cum. % variance", "% var.")


class SpectrumPlot:
    """Singular values (left axis) and the cumulative percent of variance (right axis), with a
    draggable line at k."""

    def __init__(
        self, layout: pg.GraphicsLayout, title: str, log_sigma: bool = True, **position: Unpack[Position]
    ) -> None:
        self.plot = line_plot(layout, title, "Component", "σ", **position)
        self.plot.setLogMode(y=log_sigma)
        self.sigma = self.plot.plot(**markers(PINK, "s", 5))
        self.percent_view = pg.ViewBox()
        self.plot.showAxis("right")
        self.plot.getAxis("right").setLogMode(False, False)  # the percent axis stays linear
        self.plot.getAxis("right").setLabel(PERCENT_LABELS[0], color="#1f5fbf")
        self.percent_view.setParentItem(self.plot)  # a child, so exports include it
        self.plot.getAxis("right").linkToView(self.percent_view)
        self.percent_view.setXLink(self.plot)
        self.percent_view.setYRange(0, 100)
        self.percent = pg.PlotDataItem(pen=pg.mkPen("#1f5fbf", width=2))
        self.percent_view.addItem(self.percent)
        self.plot.vb.sigResized.connect(self._sync)
        self.k_line = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("r", width=2), hoverPen="m")
        self.plot.addItem(self.k_line)

    def set_spectrum(self, s: np.ndarray, cumulative: np.ndarray, k: int) -> None:
        index = np.arange(1, len(s) + 1)
        positive = s > 0
        self.sigma.setData(index[positive], s[positive])
        self.percent.setData(index, cumulative)
        self.plot.setXRange(0, len(s) + 1, padding=0.02)
        self.plot.enableAutoRange(axis="y")
        self.set_k(k)

    def set_k(self, k: int) -> None:
        self.k_line.setValue(k)

    def _sync(self) -> None:
        self.percent_view.setGeometry(self.plot.vb.geometry())
        self._fit_percent_label()

    def _fit_percent_label(self) -> None:
        """The longest of PERCENT_LABELS that fits the axis's height: a clipped one ran into the title."""
        axis = self.plot.getAxis("right")
        metrics = QtGui.QFontMetricsF(axis.label.font())
        room = self.plot.vb.height()
        label = next((t for t in PERCENT_LABELS if metrics.horizontalAdvance(t) + 4 <= room), PERCENT_LABELS[-1])
        if axis.labelText != label:
            axis.setLabel(label, color="#1f5fbf")
