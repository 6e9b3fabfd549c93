"""The app as a new user meets it: panels that reflow with the window, a tooltip on every input and
panel, the Help > Guide window, and screenshots at a chosen size."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QSlider,
)

INPUTS = (QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QPlainTextEdit, QSlider)


def _inputs(tab):
    """The tab's input widgets, less the line edits inside spin boxes and combo boxes."""
    found = [w for kind in INPUTS for w in tab.findChildren(kind)]
    return [w for w in found if not (isinstance(w, QLineEdit) and isinstance(w.parent(), (QAbstractSpinBox, QComboBox)))]


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
