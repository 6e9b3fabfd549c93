"""`hsviewer screenshots DIR [--size WxH]`: run the default analyses, wait for them, save one PNG per tab."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QSize, QTimer
from PySide6.QtWidgets import QApplication

from hsviewer.gui.jobs import ModelInfo
from hsviewer.gui.main_window import MainWindow

log = logging.getLogger(__name__)

FILES = ("image_svd.png", "hidden_state.png", "layer_sweep.png")
LAYER = 4  # the notebook's layer
GRID = "80,90,95,99"
TIMEOUT_MS = 20 * 60 * 1000


class ScreenshotRun(QObject):
    """Starts the hidden-state and sweep analyses once the model is in, then grabs each tab."""

    def __init__(self, window: MainWindow, out_dir: str | Path, size: tuple[int, int] | None = None) -> None:
        """size: the window size asked for; the run fails if the window could not get it."""
        super().__init__(window)
        self.window = window
        self.out_dir = Path(out_dir)
        self.size = QSize(*size) if size else None
        self.pending = {"image", "hidden", "sweep"}
        window.show_error = lambda message: None  # no modal dialogs: errors end the run instead
        window.show_load_error = window.show_error
        window.error_occurred.connect(self._failed)
        window.model_loaded.connect(self._model_ready)
        window.job_done.connect(self._done)
        QTimer.singleShot(TIMEOUT_MS, self._timed_out)

    def _model_ready(self, info: ModelInfo) -> None:
        tab = self.window.hidden_tab
        tab.layer.setValue(min(LAYER, info.n_layers - 1))
        tab.run()
        self.window.sweep_tab.grid_field.setText(GRID)
        self.window.sweep_tab.run()

    def _done(self, name: str) -> None:
        self.pending.discard(name)
        if not self.pending:
            QTimer.singleShot(200, self._save)

    def _save(self) -> None:
        if self.size is not None and self.window.size() != self.size:  # a smaller screen shrinks the window
            got = self.window.size()
            self._failed(
                f"the window is {got.width()}x{got.height()}, not the {self.size.width()}x{self.size.height()} asked "
                "for: the screen is smaller (under xvfb-run, give it -s '-screen 0 WxHx24' at least that big)"
            )
            return
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self._failed(f"cannot create {self.out_dir}: {e.strerror}")
            return
        for index, name in enumerate(FILES):
            self.window.tabs.setCurrentIndex(index)
            QApplication.processEvents()
            path = self.out_dir / name
            if not self.window.grab().save(str(path)):
                self._failed(f"could not write {path}")
                return
            log.info("saved %s", path)
        QApplication.exit(0)

    def _timed_out(self) -> None:
        self._failed("timed out waiting for the analyses")

    def _failed(self, message: str) -> None:
        print(f"hsviewer: screenshots failed: {message}", file=sys.stderr, flush=True)
        QApplication.exit(1)
