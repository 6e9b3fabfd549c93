"""Run by test_gui on a real X display: press Ctrl+U in each image-tab spin box; print what happened as JSON."""

from __future__ import annotations

import json
import sys

from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication


def main(settings_file: str) -> None:
    app = QApplication([])
    from hsviewer.gui import dialogs
    from hsviewer.gui.main_window import MainWindow
    from hsviewer.gui.settings import Settings

    asked = []
    dialogs.ask_url = lambda parent: asked.append(parent) or ""
    window = MainWindow(Settings(QSettings(settings_file, QSettings.Format.IniFormat)))
    window.show()
    window.activateWindow()
    QTest.qWaitForWindowActive(window, 5000)
    seen = {}
    for name in ("downsample", "k_spin", "variance"):
        spin = getattr(window.image_tab, name)
        spin.setFocus()
        QTest.qWait(50)
        before = spin.text()
        asked.clear()
        QTest.keyClick(spin, Qt.Key.Key_U, Qt.KeyboardModifier.ControlModifier)
        QTest.qWait(50)
        seen[name] = {"focus": spin.hasFocus(), "asked": len(asked), "before": before, "after": spin.text()}
    window.close()
    app.processEvents()
    print(json.dumps(seen))


if __name__ == "__main__":
    main(sys.argv[1])
