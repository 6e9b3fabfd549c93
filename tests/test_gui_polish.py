"""What makes the app feel finished (issue 20, points 5, 7, 8 and 9): empty panels that say what to press,
titles and labels that fit at 1024x700 and 1280x800, a Σ that can be seen, exports whose legends scale and
whose SVG stays small, file dialogs that remember their own folders, and Ctrl+Tab going round the tabs."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

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
