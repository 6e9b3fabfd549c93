"""The app as a new user meets it: panels that reflow with the window, a tooltip on every input and
panel, the Help > Guide window, and screenshots at a chosen size."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QSlider,
    QTabBar,
)

INPUTS = (QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QPlainTextEdit, QSlider)


def _inputs(tab):
    """The tab's input widgets, less the parts of others: line edits inside spin boxes and combo boxes,
    a page bar's scroll arrows, a table's corner button, a line edit's clear button."""
    found = [w for kind in INPUTS for w in tab.findChildren(kind)]
    inner = (QAbstractSpinBox, QComboBox)
    parts_of = (QTabBar, QAbstractItemView, QLineEdit)
    return [
        w
        for w in found
        if not (isinstance(w, QLineEdit) and isinstance(w.parent(), inner)) and not isinstance(w.parent(), parts_of)
    ]


def _settle(qtbot, window, width, height, index):
    window.resize(width, height)
    window.tabs.setCurrentIndex(index)
    qtbot.wait(50)  # the resize and the layouts it asks for are handled


@pytest.mark.parametrize("index", [0, 1, 2])
def test_the_panel_grid_has_more_columns_when_wide_and_never_scrolls_sideways(qtbot, window, index):
    tab = window.tabs.widget(index)
    area = tab.graphics
    scroll = area.parentWidget().parentWidget()
    columns = {}
    for width, height in ((760, 600), (1024, 700), (1920, 1080), (3840, 2160), (1280, 800)):
        _settle(qtbot, window, width, height, index)
        columns[width] = area.columns
        assert scroll.horizontalScrollBar().maximum() == 0, (width, window.tabs.tabText(index))
        assert area.width() <= scroll.viewport().width()
        for panel in area.panels:  # laid out inside the area: reachable by scrolling down at most
            rect = area.mapFromScene(panel.sceneBoundingRect()).boundingRect()
            assert area.rect().adjusted(-1, -1, 1, 1).contains(rect), (width, panel.titleLabel.text)
    assert columns[760] < columns[1920] == columns[3840] == 3
    assert columns[1024] >= 2


def test_a_narrow_panel_column_flows_into_one_column_and_scrolls_down(qtbot, window):
    _settle(qtbot, window, 1280, 800, 1)
    splitter = window.hidden_tab.inputs.parentWidget()
    while splitter is not None and not hasattr(splitter, "setSizes"):
        splitter = splitter.parentWidget()
    splitter.setSizes([900, 380])  # the inputs widened, the plots squeezed
    qtbot.wait(50)
    area = window.hidden_tab.graphics
    scroll = area.parentWidget().parentWidget()
    assert area.columns == 1
    assert scroll.horizontalScrollBar().maximum() == 0
    assert scroll.verticalScrollBar().maximum() > 0  # nine panels one above the other


def test_every_input_and_every_panel_of_every_tab_has_a_tooltip(window):
    for index in range(window.tabs.count()):
        tab = window.tabs.widget(index)
        name = window.tabs.tabText(index)
        inputs = _inputs(tab)
        assert len(inputs) >= 6, name
        missing = [f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}" for w in inputs if not w.toolTip()]
        assert missing == [], name
        panels = [*tab.graphics.panels, *tab.plots().values()]
        assert all(panel.toolTip().strip() for panel in panels), name


def _names_shown(window):
    """What the tabs call things: panel titles, form labels, reduction choices, controls, legends, colour bar."""
    from PySide6.QtWidgets import QCheckBox, QFormLayout, QLabel

    names = set()
    for index in range(window.tabs.count()):
        tab = window.tabs.widget(index)
        names |= {panel.titleLabel.text for panel in tab.graphics.panels}
        for form in tab.findChildren(QFormLayout):
            for row in range(form.rowCount()):
                item = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
                if item is not None and isinstance(item.widget(), QLabel):
                    names.add(item.widget().text())
        names |= {box.text() for box in tab.findChildren(QCheckBox)}
    for combo in (window.hidden_tab.form.mode, window.hidden_tab.form.centering):
        names |= {combo.itemText(i) for i in range(combo.count())}
    sweep = window.sweep_tab
    for plot in (sweep.norms, sweep.loss):
        names |= {label.text for _, label in plot.legend.items}
    names.add(sweep.layer_bar.axis.labelText)
    return names


def _guide_images(text):
    import re

    return re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)


def test_the_guide_opens_from_the_help_menu_and_from_f1_once(qtbot, window):
    from PySide6.QtCore import Qt

    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    guide_action = next(a for a in help_menu.actions() if a.text() == "&Guide")
    assert guide_action.shortcut().toString() == "F1"
    guide_action.trigger()
    guide = window.guide
    assert guide is not None and guide.isVisible()
    guide.close()
    window.activateWindow()
    qtbot.keyClick(window.tabs, Qt.Key.Key_F1)
    qtbot.waitUntil(guide.isVisible)
    assert window.guide is guide  # the same window again, not a second one
    window.close()
    assert not guide.isVisible()  # closing the app closes its guide


def test_the_guide_names_every_panel_control_and_choice_the_tabs_show(window):
    window.show_guide()
    text = window.guide.browser.toPlainText().lower()
    names = _names_shown(window)
    assert len(names) > 30
    missing = sorted(name for name in names if name.lower() not in text)
    assert missing == []
    window.guide.close()


def test_the_guide_explains_every_measure_a_comparison_can_draw():
    """Each metric's name as the comparison's box shows it (up to its parenthesis), and the geometry
    measures' caveats: TwoNN's 20 tokens, why linearity is a rotation and not a least-squares fit."""
    import re

    from hsviewer.core.choices import METRICS
    from hsviewer.core.resources import guide_path

    text = re.sub(r"[*`]", "", guide_path().read_text(encoding="utf-8")).lower()
    missing = [title for title in METRICS.values() if title.split(" (")[0].lower() not in text]
    assert missing == []
    for words in ("null below 20 tokens", "least-squares", "unrelated clouds score about 0.9", "onset"):
        assert words in text


def test_every_picture_the_guide_shows_exists_and_loads(window):
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QImage, QTextDocument

    from hsviewer.core.resources import guide_path

    pictures = _guide_images(guide_path().read_text(encoding="utf-8"))
    assert len(pictures) >= 8
    window.show_guide()
    browser = window.guide.browser
    for name in pictures:
        path = guide_path().parent / name
        assert path.is_file(), name
        assert not QImage(str(path)).isNull(), name
        assert path.stat().st_size < 120_000, name  # small pictures: they ship in the wheel
        loaded = browser.loadResource(QTextDocument.ResourceType.ImageResource, QUrl(name))
        assert loaded is not None and not QImage.fromData(loaded).isNull(), name  # found through the search path
    window.guide.close()


def test_screenshots_take_the_window_size_asked_for(tmp_path, tiny_model_dir, monkeypatch):
    from PIL import Image

    import hsviewer.gui.app
    from hsviewer.cli import main as cli_main

    asked = []
    monkeypatch.setattr(hsviewer.gui.app, "main", lambda **kwargs: asked.append(kwargs) or 0)
    assert cli_main(["screenshots", "D", "--size", "1024x700"]) == 0
    assert asked == [{"screenshots": "D", "model": None, "size": (1024, 700)}]
    monkeypatch.undo()
    out = tmp_path / "shots"
    assert hsviewer.gui.app.main(screenshots=str(out), model=str(tiny_model_dir), size=(1024, 700)) == 0
    for name in ("image_svd.png", "hidden_state.png", "layer_sweep.png", "sweep_measures.png"):
        assert Image.open(out / name).size == (1024, 700)


@pytest.mark.parametrize("size", ["1024", "1024x", "x700", "0x700", "1024x-7", "big"])
def test_a_screenshot_size_that_is_not_width_x_height_is_one_clear_error(size, capsys):
    from hsviewer.cli import main as cli_main

    assert cli_main(["screenshots", "D", "--size", size]) == 2
    err = capsys.readouterr().err
    assert "a size is WIDTHxHEIGHT in pixels" in err and "Traceback" not in err


def test_a_long_summary_scrolls_the_inputs_and_leaves_the_window_1024_by_700(window):
    for tab in (window.hidden_tab, window.sweep_tab):
        tab.summary.setText("<br>".join(f"line {i} of a long summary" for i in range(40)))
        window.tabs.setCurrentWidget(tab)
        window.resize(1024, 700)
        hint = window.minimumSizeHint()
        assert hint.width() <= 1024 and hint.height() <= 700
        assert window.height() == 700  # not grown past a small screen: the status bar stays on it
