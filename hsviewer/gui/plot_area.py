"""The reflowing panel grid: a tab's panels in as many columns as the window's width allows,
scrolling vertically rather than cutting panels off."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from hsviewer.gui.plots import free_title_width

PANEL_MIN_WIDTH = 300  # pixels a column keeps however small the window: below that, fewer columns
PANEL_MIN_HEIGHT = 190
ROW_HEIGHT_CAP = 260  # the tallest rows' minimum height grows with the column's width up to this
ROW_ASPECT = 0.4  # ... as this fraction of that width: panels stay wider than tall


class PlotArea(pg.GraphicsLayoutWidget):
    """A tab's panels in reading order, in as many columns (up to max_columns) as the width offered
    allows, never smaller than its panels need: in scroll_area() a narrow window gets fewer columns
    and a short one scrolls vertically, instead of cutting panels off.

    Panels come from addPlot() or add_panel(); a wide one takes a row of its own, and the last panel
    of a short row takes the columns left.
    """

    def __init__(self, max_columns: int = 3) -> None:
        super().__init__()
        self.max_columns = max_columns
        self.panels: list[Any] = []
        self.wide: list[Any] = []
        self.stretch: dict[Any, int] = {}  # a panel's share of the height; a row takes its largest
        self.columns = 0
        self.offered = 0  # the width the scroll area offers; 0 before it does
        self.row_stretch: dict[int, int] = {}  # per row of the current placement
        self._arrange_soon = QtCore.QTimer(self)  # a child: it dies with the widget, never calling arrange() after
        self._arrange_soon.setSingleShot(True)
        self._arrange_soon.setInterval(0)
        self._arrange_soon.timeout.connect(self.arrange)
        self.ci.installEventFilter(self)  # a title or axis that grows asks for a new layout: follow it
        self.addPlot = self.add_plot  # Heatmap and line_plot call addPlot (pyqtgraph sets it on the instance)

    def add_plot(self, **kwargs: Any) -> pg.PlotItem:
        """A new panel; a fixed grid's row and col are ignored: the panels flow in the order added."""
        for key in ("row", "col", "rowspan", "colspan"):
            kwargs.pop(key, None)
        plot = pg.PlotItem(**kwargs)
        free_title_width(plot)  # a long title wraps instead of widening its column
        self.add_panel(plot)
        return plot

    def add_panel(self, item: Any) -> None:
        self.panels.append(item)
        self.ci.addItem(item, row=self.ci.layout.rowCount(), col=0)  # a free row until placed
        self.columns = 0  # placed for now; arrange() puts it in its place
        self.arrange()

    def make_wide(self, item: Any) -> None:
        """Give a panel a row of its own (a long token axis, say)."""
        self.wide.append(item)
        self.columns = 0
        self.arrange()

    def set_stretch(self, items: Sequence[Any], stretch: int) -> None:
        """Give these panels' rows this share of the height (1 by default)."""
        for item in items:
            self.stretch[item] = stretch
        self.columns = 0
        self.arrange()

    def offer_width(self, width: int) -> None:
        """The width the panels may use (the scroll area's, less its vertical scroll bar)."""
        self.offered = width
        self.arrange()

    def column_count(self, width: int) -> int:
        """As many columns as fit the width at the widest panel's minimum, 1 to max_columns."""
        spacing = self.ci.layout.horizontalSpacing()
        needed = max([PANEL_MIN_WIDTH, *(_minimum(p).width() for p in self.panels if p not in self.wide)])
        return max(1, min(self.max_columns, int((width + spacing) // (needed + spacing))))

    def arrange(self) -> None:
        """Place the panels for the width offered (when the column count changes), size the rows, fit()."""
        width = self.offered or self.width()
        columns = self.column_count(width)
        if columns != self.columns:
            self.columns = columns
            self._place(columns)
        self._size_rows(width / columns)
        self.fit()

    def _place(self, columns: int) -> None:
        layout = self.ci.layout
        while layout.count():
            layout.removeAt(layout.count() - 1)
        self.ci.rows, self.ci.items = {}, {}
        row = col = 0
        stretch: dict[int, int] = {}
        for index, item in enumerate(self.panels):
            wide = item in self.wide
            if col and (wide or col == columns):
                row, col = row + 1, 0
            following = self.panels[index + 1] if index + 1 < len(self.panels) else None
            ends_row = following is None or following in self.wide or col == columns - 1
            span = columns - col if wide or ends_row else 1
            layout.addItem(item, row, col, 1, span)
            self.ci.items[item] = [(row, c) for c in range(col, col + span)]
            self.ci.rows.setdefault(row, {}).update({c: item for c in range(col, col + span)})
            col += span
            stretch[row] = max(stretch.get(row, 1), self.stretch.get(item, 1))
        for r in range(max(row + 1, layout.rowCount())):
            layout.setRowStretchFactor(r, stretch.get(r, 0))
            layout.setRowMinimumHeight(r, 0)
        for c in range(max(columns, layout.columnCount())):
            layout.setColumnStretchFactor(c, 1 if c < columns else 0)
        self.ci.currentRow, self.ci.currentCol = row + 1, 0
        self.row_stretch = stretch

    def _size_rows(self, column_width: float) -> None:
        """Rows at least ROW_ASPECT of a column's width tall (in their height shares), within the bounds."""
        if not self.row_stretch:
            return
        height = min(max(ROW_ASPECT * column_width, PANEL_MIN_HEIGHT), ROW_HEIGHT_CAP)
        top = max(self.row_stretch.values())
        layout = self.ci.layout
        for r, stretch in self.row_stretch.items():
            minimum = float(int(height * stretch / top))
            if layout.rowMinimumHeight(r) != minimum:  # setting it, even unchanged, asks for a new layout
                layout.setRowMinimumHeight(r, minimum)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:
        if event.type() == QtCore.QEvent.Type.LayoutRequest:
            self._arrange_soon.start()
        return False

    def fit(self) -> None:
        """Set the minimum size to what the layout needs (panels, titles, axes, colour bars)."""
        needed = self.ci.effectiveSizeHint(QtCore.Qt.SizeHint.MinimumSize).toSize()
        extra = 2 * self.frameWidth()
        self.setMinimumSize(needed + QtCore.QSize(extra, extra))


def _minimum(item: Any) -> QtCore.QSizeF:
    return item.effectiveSizeHint(QtCore.Qt.SizeHint.MinimumSize)


class PanelScroll(QtWidgets.QScrollArea):
    """Scrolls a PlotArea vertically, offering it the width it has so its columns follow that width."""

    def __init__(self, area: PlotArea) -> None:
        super().__init__()
        self.setWidget(area)
        self.setWidgetResizable(True)
        self.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        # Less the vertical scroll bar, shown or not: its coming and going must not change the columns.
        bar = self.style().pixelMetric(QtWidgets.QStyle.PixelMetric.PM_ScrollBarExtent)
        area = self.widget()
        if isinstance(area, PlotArea):
            area.offer_width(event.size().width() - bar)
        super().resizeEvent(event)


def scroll_area(area: PlotArea) -> PanelScroll:
    """The panels in a scroll area that stretches them to its width and scrolls below their minimum height."""
    scroll = PanelScroll(area)
    area.fit()
    return scroll
