"""Help > Guide: what each tab, panel and number means, read from the bundled guide (Markdown with pictures)."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from hsviewer.core.resources import guide_path

SIZE = (780, 820)  # shrunk to the screen


class GuideWindow(QDialog):
    """A window beside the main one (not modal), so the guide can stay open while the user tries things."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("hsviewer guide")
        path = guide_path()
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.setSearchPaths([str(path.parent)])  # the pictures sit beside the text
        self.browser.setMarkdown(path.read_text(encoding="utf-8"))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        screen = QGuiApplication.primaryScreen()
        free = screen.availableGeometry().size() * 0.9 if screen is not None else None
        width, height = SIZE
        self.resize(min(width, free.width()) if free else width, min(height, free.height()) if free else height)
