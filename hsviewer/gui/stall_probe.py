"""How long the GUI's event loop stalls while the app runs a sweep: a 5 ms QTimer that
records the longest gap between its ticks (for `hsviewer bench`)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSettings, QTimer, SignalInstance
from PySide6.QtWidgets import QApplication

TICK_MS = 5


def longest_stall_during_sweep(model: str, text: str) -> float:
    """Seconds of the longest gap between timer ticks while the main window sweeps `text`."""
    from hsviewer.gui.main_window import MainWindow
    from hsviewer.gui.settings import Settings

    app = QApplication.instance() or QApplication(["hsviewer", "-platform", "offscreen"])
    with tempfile.TemporaryDirectory() as folder:
        window = MainWindow(Settings(QSettings(str(Path(folder) / "probe.ini"), QSettings.Format.IniFormat)))
        window.error_dialogs = False
        window.error_occurred.connect(lambda message: print(f"error: {message}"))
        window.show()
        _wait(window.model_loaded, lambda: window.load_model(model))
        tabs = window.built_tabs()
        tabs.hidden.text.setPlainText(text)
        gaps = _Gaps()
        timer = QTimer()
        timer.setInterval(TICK_MS)
        timer.timeout.connect(gaps.tick)
        timer.start()
        _wait(window.job_done, tabs.sweep.run)
        timer.stop()
        window.close()
    app.processEvents()
    return gaps.longest


class _Gaps:
    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.longest = 0.0

    def tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last)
        self.last = now


def _wait(signal: SignalInstance, start: Callable[[], object]) -> None:
    loop = QEventLoop()
    signal.connect(loop.quit)
    start()
    loop.exec()
    signal.disconnect(loop.quit)
