"""What makes the app feel finished (issue 20, points 5, 7, 8 and 9): empty panels that say what to press,
titles and labels that fit at 1024x700 and 1280x800, a Σ that can be seen, exports whose legends scale and
whose SVG stays small, file dialogs that remember their own folders, and Ctrl+Tab going round the tabs."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from tests.support import wait_job

# The fixtures `settings`, `window` and `loaded` (the real main window, errors recorded) are in conftest.py.


def test_export_data_opens_in_the_last_export_folder_not_the_image_folder(qtbot, loaded, tmp_path, monkeypatch):
    from PIL import Image
    from PySide6.QtWidgets import QFileDialog

    pictures, tables = tmp_path / "pictures", tmp_path / "tables"
    pictures.mkdir()
    tables.mkdir()
    Image.fromarray((np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)).save(pictures / "a.png")
    with wait_job(qtbot, loaded, "hidden"):
        loaded.hidden_tab.run()
    loaded.tabs.setCurrentWidget(loaded.hidden_tab)
    asked = []

    def save_as(parent, caption, folder, filters):
        asked.append((caption, folder))
        return str(tables / "run.json"), "JSON (*.json)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_as))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a: (str(pictures / "a.png"), "")))
    loaded.export_data_dialog()
    assert (tables / "run.json").is_file()
    with wait_job(qtbot, loaded, "image"):
        loaded.open_image_dialog()  # an image from another folder in between
    loaded.tabs.setCurrentWidget(loaded.hidden_tab)
    loaded.export_data_dialog()
    assert asked[-1] == ("Export data", str(tables))
    loaded.settings.save()
    from hsviewer.gui.settings import Settings

    assert Settings(loaded.settings.store).folder("data") == str(tables)  # and after a restart
    assert loaded.settings.folder("figure") == ""  # figures keep a folder of their own


def _first_focusable(page):
    from PySide6.QtWidgets import QAbstractItemView, QWidget

    views = page.findChildren(QAbstractItemView)  # a table or list takes Ctrl+Tab for itself if it can
    widgets = [*views, *page.findChildren(QWidget)]
    return next(w for w in widgets if w.isVisible() and w.focusPolicy() & Qt.FocusPolicy.TabFocus)


@pytest.mark.parametrize("forward", [True, False])
def test_ctrl_tab_goes_round_the_tabs_from_the_last_to_the_first(qtbot, window, forward):
    count = window.tabs.count()
    window.tabs.setCurrentIndex(count - 1 if forward else 0)
    seen = [window.tabs.currentIndex()]
    key = Qt.Key.Key_Tab if forward else Qt.Key.Key_Backtab
    modifiers = Qt.KeyboardModifier.ControlModifier | (
        Qt.KeyboardModifier.NoModifier if forward else Qt.KeyboardModifier.ShiftModifier
    )
    for _ in range(count):
        focused = _first_focusable(window.tabs.currentWidget())
        focused.setFocus()
        qtbot.keyClick(focused, key, modifiers)
        seen.append(window.tabs.currentIndex())
    step = 1 if forward else -1
    assert seen == [(seen[0] + step * i) % count for i in range(count + 1)]


def _settle(qtbot, window, size, tab):
    window.resize(*size)
    window.tabs.setCurrentWidget(tab)
    qtbot.wait(150)  # the resize and the layouts it asks for are handled


def test_the_hidden_state_panels_say_what_to_press_before_the_first_run(qtbot, loaded):
    tab = loaded.hidden_tab
    _settle(qtbot, loaded, (1024, 700), tab)
    for name, plot in tab.plots().items():
        notes = [n for n in tab.empty_notes if n.parentItem() is plot.getViewBox().childGroup]
        assert len(notes) == 1 and notes[0].isVisible(), name
        assert "Ctrl+R" in notes[0].textItem.toPlainText()
        (x0, x1), (y0, y1) = plot.viewRange()
        assert x0 <= notes[0].pos().x() <= x1 and y0 <= notes[0].pos().y() <= y1, name  # in view
        for side in ("left", "bottom"):
            assert "(x" not in plot.getAxis(side).labelString(), (name, plot.getAxis(side).labelString())
    with wait_job(qtbot, loaded, "hidden"):
        tab.run()
    assert not any(note.isVisible() for note in tab.empty_notes)
    x = tab.scatter_points.data["x"]
    (x0, x1), _ = tab.scatter.viewRange()
    assert x0 <= x.min() and x.max() <= x1  # the data's range now, not the note's 0 to 1


@pytest.mark.parametrize("size", [(1024, 700), (1280, 800)])
def test_the_first_screen_says_in_one_line_what_each_tab_is_for(qtbot, window, size):
    from hsviewer.gui.main_window import TAB_NAMES

    _settle(qtbot, window, size, window.image_tab)
    line = window.purposes
    assert line.isVisible() and not line.wordWrap()
    assert line.width() >= line.sizeHint().width()  # all of it shown, on one line
    assert line.height() <= 2 * line.fontMetrics().height()
    text = line.text()
    for index, name in enumerate(TAB_NAMES):
        assert name in text
        assert window.tabs.tabToolTip(index)
    assert not window.tabs.tabBar().usesScrollButtons() or window.tabs.tabBar().sizeHint().width() <= window.width()


def test_the_corpus_texts_list_shows_every_departure_whole(qtbot, window):
    from types import SimpleNamespace

    view = window.sweep_tab.corpus_view
    names = ["code_python_fibonacci_with_a_long_name", "code_python_wordcount_and_more_words"]
    result = SimpleNamespace(
        controls=[],
        aggregate=lambda label: [],
        names=names,
        departures=lambda: [1.25, 0.5],
        texts=[
            SimpleNamespace(tokens=[0] * 5, layers=[], massive_activation_onset=lambda: {"layer": None}) for _ in names
        ],
        n_layers=3,
        notes=[],
        cancelled=False,
        source="corpus",
    )
    window.sweep_tab.views.setCurrentWidget(view)
    _settle(qtbot, window, (1024, 700), window.sweep_tab)
    view.update_result(result)
    qtbot.wait(50)
    room = view.texts.viewport().width()
    metrics = view.texts.fontMetrics()
    for row, departure in enumerate(("1.25", "0.50")):
        text = view.texts.item(row).text()
        shown = text[: text.index(departure) + len(departure)]  # the text up to the number's end
        assert metrics.horizontalAdvance(shown) + 8 <= room, text


def _title_lines(plot) -> int:
    document = plot.titleLabel.item.document()
    block, lines = document.begin(), 0
    while block.isValid():
        lines += block.layout().lineCount()
        block = block.next()
    return lines


REAL_TITLES = {  # the default model's titles (layer 4, default text), as the app sets them
    "Original HS": "Original HS (layer 4)",
    "Reconstruction": "Reconstruction (k = 43, 80.17% var.)",
    "Original vs reconstruction": "Original vs reconstruction, r = 0.99123",
    "Singular-value spectrum": "Singular-value spectrum (not centred)",
    "Reduction applied in the forward pass": "Reduction applied in the forward pass (at layer 4)",
}


@pytest.mark.parametrize("size", [(1024, 700), (1280, 800)])
def test_panel_titles_fit_on_one_line(qtbot, window, size):
    from hsviewer.gui import plots

    for name, title in REAL_TITLES.items():
        plots.set_title(window.hidden_tab.plots()[name], title)
    plots.set_title(window.image_tab.reconstruction.plot, "Reconstruction, k = 143 (99.17% var.)")
    for tab in (window.image_tab, window.hidden_tab, window.sweep_tab):
        _settle(qtbot, window, size, tab)
        for name, plot in tab.plots().items():
            if name.startswith("G)"):
                continue  # a row of its own: as wide as the tab
            assert _title_lines(plot) == 1, (size, plot.titleLabel.text)
            title = plot.titleLabel.item.sceneBoundingRect()
            assert plot.sceneBoundingRect().adjusted(-1, -1, 1, 1).contains(title), plot.titleLabel.text


def _left_label_fits(plot) -> None:
    """The left axis's label no taller than its axis, clear of the panel's title."""
    axis = plot.getAxis("left")
    label = axis.label.sceneBoundingRect()
    assert label.height() <= axis.sceneBoundingRect().height() + 1, axis.labelText
    assert not label.intersects(plot.titleLabel.item.sceneBoundingRect()), axis.labelText


@pytest.mark.parametrize("size", [(1024, 700), (1280, 800)])
def test_the_sweep_axis_labels_fit_their_axes_and_stay_out_of_the_titles(qtbot, window, size):
    tab = window.sweep_tab
    _settle(qtbot, window, size, tab)  # panel B's "Diff norm (max-scaled)" ran up into its title at 1024x700
    for plot in tab.plots().values():
        _left_label_fits(plot)


def _legend_text_fits(plot) -> None:
    """Every legend entry's text whole inside its panel, none over another's (columns too wide ran the
    text of one entry into the next, and past the panel's edge)."""
    texts = [label.item.sceneBoundingRect() for _, label in plot.legend.items]
    panel = plot.sceneBoundingRect().adjusted(-1, -1, 1, 1)
    assert all(panel.contains(text) for text in texts), plot.titleLabel.text
    for i, a in enumerate(texts):
        assert not any(_overlap(a, b) for b in texts[i + 1 :]), plot.titleLabel.text


def _overlap(a, b) -> bool:
    return a.intersects(b) and not a.intersected(b).isEmpty()


@pytest.mark.parametrize("size", [(1024, 700), (1280, 800)])
def test_the_measures_page_reads_at_small_windows(qtbot, window, size):
    from tests import measure_runs

    tab = window.sweep_tab
    view = tab.measures_view
    result = measure_runs.sweep(controls=measure_runs.CONTROLS)
    _settle(qtbot, window, size, tab)
    view.begin()
    for label, run in [("", result), *result.controls.items()]:  # as a sweep draws them: a run at a time,
        view.set_run(label, run)  # the page not shown
        qtbot.wait(20)
    tab.views.setCurrentWidget(view)
    _settle(qtbot, window, size, tab)
    for title, plot in view.plots().items():
        assert _title_lines(plot) == 1, (size, title)
        _left_label_fits(plot)
        legend, data = plot.legend.sceneBoundingRect(), plot.getViewBox().sceneBoundingRect()
        assert legend.height() > 0 and not (legend.intersects(data) and not legend.intersected(data).isEmpty())
        assert data.height() >= 80, (size, title)  # room for the curves, not squeezed by the legend
        _legend_text_fits(plot)
    onset = view.panels["massive_activation"].onset.label.sceneBoundingRect()
    assert view.panels["massive_activation"].plot.getViewBox().sceneBoundingRect().contains(onset)
    corpus = measure_runs.corpus(controls=measure_runs.CONTROLS)
    tab.corpus_view.begin(corpus)
    tab.corpus_view.update_result(corpus)
    tab.views.setCurrentWidget(tab.corpus_view)
    _settle(qtbot, window, size, tab)
    for band in tab.corpus_view.bands:
        assert _title_lines(band.plot) == 1, (size, band.key)
        _left_label_fits(band.plot)
        legend, data = band.plot.legend.sceneBoundingRect(), band.plot.getViewBox().sceneBoundingRect()
        assert legend.height() > 0 and not (legend.intersects(data) and not legend.intersected(data).isEmpty())


@pytest.mark.parametrize("size", [(1024, 700), (1280, 800)])
def test_the_spectrum_percent_label_fits_its_axis_and_stays_out_of_the_title(qtbot, window, size):
    for tab in (window.hidden_tab, window.image_tab):
        _settle(qtbot, window, size, tab)
        plot = tab.spectrum.plot
        axis = plot.getAxis("right")
        label = axis.label.sceneBoundingRect()
        assert label.height() <= axis.sceneBoundingRect().height() + 1, axis.labelText
        assert not label.intersects(plot.titleLabel.item.sceneBoundingRect()), axis.labelText
        assert "%" in axis.labelText


def test_the_measure_labels_stay_inside_the_spectrum(qtbot, loaded):
    import dataclasses

    tab = loaded.hidden_tab
    _settle(qtbot, loaded, (1280, 800), tab)
    with wait_job(qtbot, loaded, "hidden"):
        tab.run()
    n = len(tab.result.s)
    for value in (n - 0.3, 1.0, n / 2):
        measures = dataclasses.replace(tab.result.measures, participation_ratio=value, effective_rank=value)
        tab.measure_lines.set(measures)
        qtbot.wait(50)
        view = tab.spectrum.plot.getViewBox().sceneBoundingRect()
        for line in (tab.measure_lines.participation, tab.measure_lines.effective):
            rect = line.label.mapRectToScene(line.label.boundingRect())
            assert view.adjusted(-1, -1, 1, 1).contains(rect), (value, line.label.format)


def _clippers(item):
    from PySide6.QtWidgets import QGraphicsItem

    parent = item.parentItem()
    while parent is not None:
        if parent.flags() & QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape:
            yield parent
        parent = parent.parentItem()


def test_the_massive_activation_ring_is_whole_on_the_first_token(qtbot, loaded):
    import dataclasses

    tab = loaded.hidden_tab
    _settle(qtbot, loaded, (1024, 700), tab)
    with wait_job(qtbot, loaded, "hidden"):
        tab.run()
    qtbot.wait(100)
    first = dataclasses.replace(tab.result.measures.massive_activation, token=0, dimension=0)
    tab.spike.set(first, tab.result.tokens)
    qtbot.wait(50)
    ring = tab.spike.item
    assert len(ring.points()) == 1
    rect = ring.mapRectToScene(ring.boundingRect())
    box = tab.original.plot.getViewBox()
    centre = box.mapViewToScene(QPointF(0.5, 0.5))
    assert abs(rect.center().x() - centre.x()) < 1.5 and abs(rect.center().y() - centre.y()) < 1.5
    assert rect.width() >= 15  # the ring itself, not a point
    for clipper in _clippers(ring):
        assert clipper.sceneBoundingRect().adjusted(-1, -1, 1, 1).contains(rect), type(clipper).__name__


def _coloured_pixels(widget, rect) -> int:
    from PySide6.QtGui import QImage

    image = widget.grab(rect).toImage().convertToFormat(QImage.Format.Format_RGB32)
    pixels = np.frombuffer(image.constBits(), dtype=np.uint8).reshape(image.height(), image.bytesPerLine() // 4, 4)
    return int((pixels[:, : image.width(), :3].min(axis=2) < 235).sum())  # not white


def test_sigma_can_be_seen_however_many_components_share_the_panel(qtbot, window, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(3)
    Image.fromarray((rng.random((300, 400)) * 255).astype(np.uint8)).save(tmp_path / "noise.png")
    window.image_tab.downsample.setValue(1)
    with wait_job(qtbot, window, "image"):
        window.open_image(str(tmp_path / "noise.png"))
    _settle(qtbot, window, (1024, 700), window.image_tab)
    sigma = window.image_tab.sigma
    sigma.plot.autoRange(padding=0)
    qtbot.wait(50)
    area = window.image_tab.graphics
    view = area.mapFromScene(sigma.plot.getViewBox().sceneBoundingRect()).boundingRect().adjusted(2, 2, -2, -2)
    diagonal = min(view.width(), view.height())
    assert len(window.image_tab.result.s) > 2 * diagonal  # more components than pixels: a 1-pixel diagonal
    assert _coloured_pixels(area, view) >= 4 * diagonal  # drawn at least 4 pixels thick


def test_components_kept_at_1_reads_against_0_and_1_and_legends_leave_room_for_ticks(qtbot, loaded):
    from hsviewer.core.linalg.reduction import Reduction
    from hsviewer.gui.plots import VIEW_MIN_HEIGHT

    tab = loaded.sweep_tab
    tab.form.set_reduction(Reduction(threshold=None, fixed_components=1))
    for box in tab.control_boxes.values():
        box.setChecked(True)
    _settle(qtbot, loaded, (1024, 700), tab)
    with wait_job(qtbot, loaded, "sweep"):
        tab.run()
    qtbot.wait(150)
    assert {r.components for r in tab.result.layers} == {1}
    (y0, y1) = tab.components.viewRange()[1]
    assert y0 < 0 < 1 < y1  # both inside the view, so both ticks are labelled
    axis = tab.components.getAxis("left")
    ticks = {round(v, 6) for _, values in axis.tickValues(y0, y1, tab.components.getViewBox().height()) for v in values}
    assert {0.0, 1.0} <= ticks
    for plot in (tab.components, tab.norms, tab.loss, tab.kl):
        assert len(plot.legend.items) >= 2
        assert plot.getViewBox().height() >= VIEW_MIN_HEIGHT - 1, plot.titleLabel.text


def _text_height(png, rect, scale) -> int:
    """The height of the dark (text) rows inside `rect` (scene units, from the panel's corner) of a PNG."""
    from PIL import Image

    image = np.asarray(Image.open(png).convert("L"), dtype=np.int32)
    x0, y0, x1, y1 = (int(v * scale) for v in (rect.left(), rect.top(), rect.right(), rect.bottom()))
    rows = np.flatnonzero((image[y0:y1, x0:x1] < 100).any(axis=1))
    return int(rows[-1] - rows[0] + 1) if rows.size else 0


def test_a_2x_png_draws_its_legend_text_twice_as_big(qtbot, window, tmp_path):
    from hsviewer.gui.figure_export import export_figure

    tab = window.sweep_tab
    _settle(qtbot, window, (1280, 800), tab)
    plot = tab.norms
    legend = plot.legend.sceneBoundingRect().translated(-plot.sceneBoundingRect().topLeft())
    heights = {}
    for scale in (1, 2):
        export_figure(plot, tmp_path / f"b{scale}.png", scale)
        heights[scale] = _text_height(tmp_path / f"b{scale}.png", legend, scale)
    assert heights[1] >= 6
    assert heights[2] >= 1.7 * heights[1], heights


def test_a_sweep_tab_svg_drops_the_empty_and_repeated_groups_and_draws_the_same(qtbot, loaded, tmp_path):
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    from hsviewer.gui.figure_export import _render_svg

    tab = loaded.sweep_tab
    tab.control_boxes["shuffled"].setChecked(True)
    tab.grid_field.setText("80, 95")
    _settle(qtbot, loaded, (1280, 800), tab)
    with wait_job(qtbot, loaded, "sweep"):
        tab.run()
    qtbot.wait(100)
    raw, compact = tmp_path / "raw.svg", tmp_path / "sweep.svg"
    _render_svg(tab.graphics.ci, str(raw))  # what Qt writes
    loaded.export_figure(str(compact))
    raw_text, text = raw.read_text(), compact.read_text()
    assert len(text) <= 0.6 * len(raw_text), (len(raw_text), len(text))
    assert not re.search(r"<g [^>]*>\s*</g>", text)  # no empty group left
    assert text.count("<path") + text.count("<polyline") >= 0.9 * (
        raw_text.count("<path") + raw_text.count("<polyline")
    )

    def draw(path):
        renderer = QSvgRenderer(str(path))
        image = QImage(renderer.defaultSize(), QImage.Format.Format_ARGB32)
        image.fill(0xFFFFFFFF)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        return np.frombuffer(image.constBits(), dtype=np.uint8).reshape(image.height(), -1).astype(int)

    from hsviewer.gui.svg_compact import compact_svg
    from hsviewer.gui.svg_strokes import flatten_strokes

    flatten_strokes(raw)  # the same strokes, so only the compaction differs
    before = draw(raw)
    compact_svg(raw)
    assert np.abs(draw(raw) - before).max() == 0  # the same picture


def test_the_guide_pictures_are_the_apps_panels(tmp_path, tiny_model_dir):
    from PIL import Image

    import hsviewer.gui.app
    from hsviewer.core.resources import guide_path
    from hsviewer.gui.screenshots import GUIDE_PICTURES, GUIDE_WIDTH

    shown = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", guide_path().read_text(encoding="utf-8")))
    assert set(GUIDE_PICTURES) == shown  # every picture the Guide shows is made by `make guide-pictures`
    out, guide = tmp_path / "shots", tmp_path / "guide"
    assert (
        hsviewer.gui.app.main(screenshots=str(out), model=str(tiny_model_dir), size=(1280, 800), guide=str(guide)) == 0
    )
    for name in GUIDE_PICTURES:
        with Image.open(guide / name) as picture:
            assert 0 < picture.width <= GUIDE_WIDTH and picture.height > 50, name
