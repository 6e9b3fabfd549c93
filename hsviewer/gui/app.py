"""Start the desktop app: the window first, the model (and torch) afterwards, on a worker thread."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

import hsviewer
from hsviewer.gui.quit_signals import close_on_signals
from hsviewer.gui.settings import APPLICATION, ORGANIZATION, Settings

if TYPE_CHECKING:
    from hsviewer.gui.main_window import MainWindow

log = logging.getLogger("hsviewer")
CLOSE_WAIT_MS = 3000  # how long closing waits for the workers before the process ends anyway
SCREENSHOT_SIZE = (1600, 1000)  # the screenshots' window, unless --size says otherwise
# The libraries Qt's xcb platform plugin loads beyond libxcb itself, with their Debian/Ubuntu packages.
XCB_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
}


def _loadable(library: str) -> bool:
    import ctypes

    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def xcb_hint(env: Mapping[str, str] | None = None, loadable: Callable[[str], bool] = _loadable) -> str | None:
    """A one-line hint naming the apt packages to install, when Qt would use its xcb platform plugin
    (Linux with an X display) and a library that plugin needs is missing: Qt then aborts with a
    message that names neither. None when nothing is missing or xcb is not used."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return None
    platform = env.get("QT_QPA_PLATFORM", "").split(":")[0].split(";")[0]
    if platform and platform != "xcb":
        return None
    if not platform and (not env.get("DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland"):
        return None
    missing = [package for library, package in XCB_LIBRARIES.items() if not loadable(library)]
    if not missing:
        return None
    return (
        f"hsviewer: Qt's X11 (xcb) platform plugin needs libraries that are missing; "
        f"install them with: sudo apt install {' '.join(missing)}"
    )


def main(
    argv: list[str] | None = None,
    screenshots: str | None = None,
    model: str | None = None,
    size: tuple[int, int] | None = None,
    guide: str | None = None,
) -> int:
    """Show the window, then build the tabs and start loading the model and the image; the exit code.

    screenshots: a folder to save one PNG per tab into, after the default analyses, then exit;
    size: the window's size for them (the screen must be at least as big), else SCREENSHOT_SIZE;
    guide: a folder to export the Guide's panel pictures into as well (screenshots only).
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    hint = None if QApplication.instance() else xcb_hint()
    if hint:  # before Qt aborts the process for want of them
        print(hint, file=sys.stderr, flush=True)
    app = QApplication.instance() or QApplication(sys.argv if argv is None else argv)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationVersion(hsviewer.__version__)
    from hsviewer.gui.main_window import MainWindow

    scratch = tempfile.TemporaryDirectory(prefix="hsviewer-") if screenshots else None
    if scratch:  # screenshots use the defaults and leave the user's settings and runs library alone
        settings = Settings(QSettings(str(Path(scratch.name) / "settings.ini"), QSettings.Format.IniFormat))
        os.environ["HSVIEWER_DATA_DIR"] = scratch.name  # the process ends with the screenshots
    else:
        settings = Settings()
    window = MainWindow(settings, defer_tabs=True)
    if screenshots:
        window.resize(*(size or SCREENSHOT_SIZE))
        window.refit_when_framed = False  # the size asked for, or a clear failure
    with close_on_signals(window.close):  # Ctrl+C and SIGTERM in the terminal: as the close button
        window.show()
        app.processEvents()
        log.info("Window on screen at %.3f", time.time())
        source = model or (None if screenshots else settings.get("model/last", "", str)) or "default"
        image = None if screenshots else settings.get("image/last", "", str)
        QTimer.singleShot(0, lambda: start(window, source, image, screenshots, size, guide))
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


def start(
    window: MainWindow,
    model: str,
    image: str | None,
    screenshots: str | None,
    size: tuple[int, int] | None = None,
    guide: str | None = None,
) -> None:
    """Build the tabs, then begin the first work: the image SVD and the model load.

    The last image is reopened only while it is still a file; otherwise the default image.
    """
    from hsviewer.core.resources import default_image

    window.build_tabs()
    if screenshots:
        from hsviewer.gui.screenshots import ScreenshotRun

        ScreenshotRun(window, screenshots, size, guide)
    window.built_tabs().image.open(image if image and Path(image).is_file() else str(default_image()))
    window.load_model(model)
