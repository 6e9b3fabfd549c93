"""Figure export: a plot, a layout or a scene written as PNG or vector SVG."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from hsviewer.core.errors import HsviewerError

PNG_SCALES = (1, 2, 4)


def export_figure(item: Any, path: str | Path, scale: int = 1) -> None:
    """Write a plot, a layout or a whole scene to .png (at `scale` times its size on screen) or .svg.

    The SVG is vector: axes, curves and markers are paths (pyqtgraph's export mode draws markers one
    by one instead of from its bitmap atlas, and no item is drawn from a cache), in page coordinates
    so that readers ignoring SVG 1.2's non-scaling strokes draw them thin (svg_strokes), without Qt's
    empty and repeated groups (svg_compact); each heatmap is one embedded image. Written to a
    temporary sibling and renamed, so the file is whole or untouched.
    """
    from hsviewer.core.library.writing import export_suffix, plain_write_errors, write_atomic
    from hsviewer.gui.svg_compact import compact_svg
    from hsviewer.gui.svg_strokes import flatten_strokes

    suffix = export_suffix(path, (".png", ".svg"), "A figure")
    if scale not in PNG_SCALES:
        raise HsviewerError(f"A figure's scale must be one of {', '.join(map(str, PNG_SCALES))}; got {scale!r}.")

    def write(tmp: Path) -> None:
        if suffix == ".png":
            # PySide6's stubs give the format as bytes, but QImage.save takes only a str (b"PNG": ValueError).
            if not _render_png(item, scale).save(str(tmp), "PNG"):  # type: ignore[call-overload]
                raise OSError(f"Qt could not save {path}")
            return
        _render_svg(item, str(tmp))
        if not tmp.read_bytes().rstrip().endswith(b"</svg>"):  # Qt's SVG generator reports no write errors
            raise OSError(f"Qt could not save {path}")
        flatten_strokes(tmp)
        compact_svg(tmp)  # after flattening, which leaves more neighbouring groups alike

    with plain_write_errors(path):
        write_atomic(path, write)
    if not Path(path).is_file():
        raise HsviewerError(f"Could not write {path}.")


def _items_below(item: Any) -> list[Any]:
    found, todo = [], [item]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(current.childItems())
    return found


class _ExportMode:
    """While painting one item for export.

    pyqtgraph's export mode on every item below it (markers drawn as paths, not from its bitmap atlas);
    no item cache (a cached item is painted as a bitmap); the rest of the scene fully transparent
    (Qt would otherwise write every item of the scene into the SVG); each colour bar a vector gradient.
    """

    def __init__(self, item: Any, opts: dict[str, Any]) -> None:
        self.root = item
        self.items = _items_below(item)
        self.opts = opts
        self.restore: list[Callable[[], None]] = []

    def __enter__(self) -> None:
        inside = set(map(id, self.items))
        for item in self.items:
            mode = item.cacheMode()
            item.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.NoCache)
            self.restore.append(_cache_restorer(item, mode))
            if hasattr(item, "setExportMode"):
                item.setExportMode(True, self.opts)
                self.restore.append(_export_mode_restorer(item))
            if isinstance(item, pg.ColorBarItem):
                self._vector_bar(item)
        ancestors = []
        parent = self.root.parentItem()
        while parent is not None:
            ancestors.append(parent)
            parent = parent.parentItem()
        on_path = inside | set(map(id, ancestors))
        scene = self.root.scene()
        siblings = [i for i in scene.items() if i.parentItem() is None]
        for ancestor in ancestors:
            siblings.extend(ancestor.childItems())
        for other in siblings:
            if id(other) not in on_path and other.opacity() > 0:
                self.restore.append(_opacity_restorer(other, other.opacity()))
                other.setOpacity(0.0)

    def _vector_bar(self, bar: pg.ColorBarItem) -> None:
        pixmap = bar.bar
        cmap = bar.colorMap()
        if cmap is None or pixmap.opacity() == 0:
            return
        rect = pixmap.boundingRect()
        end = QtCore.QPointF(rect.width(), 0) if bar.horizontal else QtCore.QPointF(0, rect.height())
        gradient = QtGui.QLinearGradient(QtCore.QPointF(0, 0), end)
        stops = np.linspace(0.0, 1.0, 33)
        for stop, color in zip(stops, cmap.map(stops, mode="qcolor"), strict=True):
            gradient.setColorAt(float(stop), color)
        shape = QtWidgets.QGraphicsRectItem(rect)
        shape.setBrush(QtGui.QBrush(gradient))
        shape.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
        shape.setTransform(pixmap.transform())
        shape.setPos(pixmap.pos())
        shape.setZValue(pixmap.zValue())
        shape.setParentItem(pixmap.parentItem())
        self.restore.append(_opacity_restorer(pixmap, pixmap.opacity()))
        pixmap.setOpacity(0.0)
        self.restore.append(_remover(shape))

    def __exit__(self, *exc: object) -> None:
        for undo in reversed(self.restore):
            undo()
        self.restore.clear()


def _cache_restorer(item: Any, mode: Any) -> Callable[[], None]:
    return lambda: item.setCacheMode(mode)


def _export_mode_restorer(item: Any) -> Callable[[], None]:
    return lambda: item.setExportMode(False)


def _opacity_restorer(item: Any, opacity: float) -> Callable[[], None]:
    return lambda: item.setOpacity(opacity)


def _remover(item: Any) -> Callable[[], None]:
    def remove() -> None:
        scene = item.scene()
        item.setParentItem(None)
        if scene is not None:
            scene.removeItem(item)

    return remove


def _render(item: Any, painter: QtGui.QPainter, target: QtCore.QRectF, opts: dict[str, Any]) -> None:
    source = item.sceneBoundingRect()
    with _ExportMode(item, opts):
        item.scene().render(painter, target, source)


def _render_png(item: Any, scale: int) -> QtGui.QImage:
    """The item's part of the scene, `scale` times its size on screen, on the white background."""
    size = item.sceneBoundingRect().size().toSize() * scale
    image = QtGui.QImage(size, QtGui.QImage.Format.Format_ARGB32)
    image.fill(QtGui.QColor("white"))
    painter = QtGui.QPainter(image)
    try:
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        painter.setRenderHint(QtGui.QPainter.RenderHint.TextAntialiasing, True)
        opts = {"antialias": True, "background": QtGui.QColor("white"), "painter": painter, "resolutionScale": scale}
        _render(item, painter, QtCore.QRectF(0, 0, size.width(), size.height()), opts)
    finally:
        painter.end()
    return image


def _render_svg(item: Any, path: str) -> None:
    """Render the item's part of the scene through Qt's own SVG generator (pyqtgraph's SVG exporter
    cannot parse the paths newer Qt writes, pyqtgraph#3485)."""
    from PySide6.QtSvg import QSvgGenerator

    source = item.sceneBoundingRect()
    generator = QSvgGenerator()
    generator.setFileName(path)
    generator.setSize(source.size().toSize())
    generator.setViewBox(QtCore.QRectF(0, 0, source.width(), source.height()))
    generator.setTitle("hsviewer figure")
    generator.setResolution(int(QtGui.QGuiApplication.primaryScreen().logicalDotsPerInch()))
    painter = QtGui.QPainter(generator)
    try:
        opts = {"antialias": True, "background": QtGui.QColor("white"), "painter": painter}
        _render(item, painter, QtCore.QRectF(0, 0, source.width(), source.height()), opts)
    finally:
        painter.end()
