"""Start the desktop app: the window first, the model (and torch) afterwards, on a worker thread."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

import hsviewer
from hsviewer.gui.settings import APPLICATION, ORGANIZATION, Settings

if TYPE_CHECKING:
    from hsviewer.gui.main_window import MainWindow

log = logging.getLogger("hsviewer")
CLOSE_WAIT_MS = 3000  # how long closing waits for the workers before the process ends anyway


def main(argv: list[str] | None = None, screenshots: str | None = None, model: str | None = None) -> int:
    """Show the window, then build the tabs and start loading the model and the image; the exit code.

    screenshots: a folder to save one PNG per tab into, after the default analyses, then exit.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication(sys.argv if argv is None else argv)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationVersion(hsviewer.__version__)
    from hsviewer.gui.main_window import MainWindow

    scratch = tempfile.TemporaryDirectory(prefix="hsviewer-") if screenshots else None
    if scratch:  # screenshots use the defaults and leave the user's settings alone
        settings = Settings(QSettings(str(Path(scratch.name) / "settings.ini"), QSettings.Format.IniFormat))
    else:
        settings = Settings()
    window = MainWindow(settings, defer_tabs=True)
    if screenshots:
        window.resize(1600, 1000)
    window.show()
    app.processEvents()
    log.info("Window on screen at %.3f", time.time())
    source = model or (None if screenshots else settings.get("model/last", "", str)) or "default"
    image = None if screenshots else settings.get("image/last", "", str)
    QTimer.singleShot(0, lambda: start(window, source, image, screenshots))
    window.close_wait_ms = CLOSE_WAIT_MS
    code = app.exec()
    window.close()
    if window.workers_running():
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End the process while a worker finishes a step that cannot be interrupted (a first
    dequantisation takes 20-40 s): the window is closed and the settings are saved, and a
    half-built cache folder is removed at the next start."""
    log.info("Exiting without waiting for the running step to finish")
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os._exit(code)


def start(window: MainWindow, model: str, image: str | None, screenshots: str | None) -> None:
    """Build the tabs, then begin the first work: the image SVD and the model load.

    The last image is reopened only while it is still a file; otherwise the default image.
    """
    from hsviewer.resources import default_image

    window.build_tabs()
    if screenshots:
        from hsviewer.gui.screenshots import ScreenshotRun

        ScreenshotRun(window, screenshots)
    window.image_tab.open(image if image and Path(image).is_file() else str(default_image()))
    window.load_model(model)
