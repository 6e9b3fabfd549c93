"""The suite's own fixtures can fail: `make_window` fails a test that leaves a window or dialog shown."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QWidget

from tests.support import leaked_widgets, visible_top_level_widgets

ROOT = Path(__file__).resolve().parents[1]


def test_leaked_widgets_names_a_widget_left_shown(qtbot):
    before = visible_top_level_widgets()
    widget = QWidget()
    widget.setWindowTitle("left open")
    widget.show()
    try:
        leaked = leaked_widgets(before)
        assert len(leaked) == 1 and leaked[0] is widget
        assert leaked_widgets(before, owned=[widget]) == []  # one pytest-qt closes is not counted
        assert leaked_widgets([*before, widget]) == []  # nor one shown before the test
    finally:
        widget.close()
    assert leaked_widgets(before) == []


INNER = """
from PySide6.QtWidgets import QMessageBox, QWidget

LEFT_OPEN = []


def test_leaves_a_window_shown(make_window):
    make_window()
    widget = QWidget()
    widget.setWindowTitle("left open")
    widget.show()
    LEFT_OPEN.append(widget)  # kept alive: a freed widget is no leak


def test_leaves_a_dialog_shown(make_window):
    box = QMessageBox(QMessageBox.Icon.Information, "still here", "a dialog nobody closed")
    box.show()
    LEFT_OPEN.append(box)


def test_fails_and_leaves_a_widget_shown(make_window):
    widget = QWidget()
    widget.show()
    LEFT_OPEN.append(widget)
    assert widget.isHidden(), "the test's own failure"


def test_closes_what_it_shows(make_window):
    windows = [make_window(), make_window()]
    widget = QWidget()
    widget.show()
    widget.close()
    assert all(w.isVisible() for w in windows)
"""


def test_make_window_fails_a_test_that_leaks_a_widget(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("-p", "tests.conftest", "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=3, errors=2, failed=1)  # the failed test gets no second error
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaves_a_window_shown*",
            "*Widgets leaked: QWidget('left open')*",
            "*ERROR at teardown of test_leaves_a_dialog_shown*",
            "*Widgets leaked: QMessageBox('still here')*",
        ]
    )
    result.stdout.fnmatch_lines(["*the test's own failure*"])
    result.stdout.no_fnmatch_line("*ERROR at teardown of test_fails_and_leaves_a_widget_shown*")
