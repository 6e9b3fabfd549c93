"""`hsviewer screenshots DIR [--size WxH]`: run the default analyses, wait for them, save one PNG per tab
and one of the sweep tab's Measures page."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEventLoop, QObject, QSize, QTimer
from PySide6.QtWidgets import QApplication

from hsviewer.gui.main_window import MainWindow

if TYPE_CHECKING:
    from hsviewer.gui.hidden_tab import HiddenTab
    from hsviewer.gui.image_tab import ImageTab
    from hsviewer.gui.sweep_tab import SweepTab
    from hsviewer.state.model import ModelInfo

log = logging.getLogger(__name__)

FILES = ("image_svd.png", "hidden_state.png", "layer_sweep.png")
MEASURES_FILE = "sweep_measures.png"  # the sweep tab's Measures page, after its One text page
LAYER = 4  # the notebook's layer
GRID = "80,90,95,99"
TIMEOUT_MS = 20 * 60 * 1000
SETTLE_MS = 300  # the event loop's time to lay out a page just shown, before it is grabbed


GUIDE_WIDTH = 700
GUIDE_COLOURS = 128
GUIDE_PICTURES = {  # resources/guide's pictures: the tab and the panel (by its title) each shows
    "image_reconstruction.png": ("image", "Reconstruction"),
    "image_spectrum.png": ("image", "Singular-value spectrum"),
    "hidden_original.png": ("hidden", "Original HS"),
    "hidden_difference.png": ("hidden", "Difference"),
    "hidden_scatter.png": ("hidden", "Original vs reconstruction"),
    "hidden_spectrum.png": ("hidden", "Singular-value spectrum"),
    "hidden_norms.png": ("hidden", "Reduction applied in the forward pass"),
    "sweep_norms.png": ("sweep", "B) Impact on logits and hidden states"),
    "sweep_loss.png": ("sweep", "C) Impact of reduction on loss"),
    "sweep_dimensionality.png": ("sweep", "E) Reduction vs. loss"),
    "sweep_grid.png": ("sweep", "F) Loss change by threshold"),
    "sweep_tokens.png": ("sweep", "G) Impact of reduction on hidden states (per-token difference norm)"),
}


def _shrink(path: Path) -> None:
    """At most GUIDE_WIDTH pixels wide and GUIDE_COLOURS colours: small files in the package."""
    from PIL import Image

    with Image.open(path) as picture:
        image = picture.convert("RGB")
    if image.width > GUIDE_WIDTH:
        image = image.resize((GUIDE_WIDTH, round(image.height * GUIDE_WIDTH / image.width)), Image.Resampling.LANCZOS)
    image.quantize(GUIDE_COLOURS).save(path, optimize=True)


class ScreenshotRun(QObject):
    """Starts the hidden-state and sweep analyses once the model is in, then grabs each tab."""

    def __init__(
        self,
        window: MainWindow,
        out_dir: str | Path,
        size: tuple[int, int] | None = None,
        guide_dir: str | Path | None = None,
    ) -> None:
        """size: the window size asked for; the run fails if the window could not get it. guide_dir: where
        to export the Guide's pictures (GUIDE_PICTURES) too, so they show what the app shows."""
        super().__init__(window)
        self.window = window
        self.out_dir = Path(out_dir)
        self.guide_dir = Path(guide_dir) if guide_dir else None
        self.size = QSize(*size) if size else None
        self.pending = {"image", "hidden", "sweep"}
        window.error_dialogs = False  # no modal dialogs: errors end the run instead
        window.error_occurred.connect(self._failed)
        window.model_loaded.connect(self._model_ready)
        window.job_done.connect(self._done)
        QTimer.singleShot(TIMEOUT_MS, self._timed_out)

    def _model_ready(self, info: ModelInfo) -> None:
        tabs = self.window.built_tabs()
        tabs.hidden.layer.setValue(min(LAYER, info.n_layers - 1))
        tabs.hidden.run()
        tabs.sweep.grid_field.setText(GRID)
        tabs.sweep.run()

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
            if not self._grab(name):
                return
        sweep = self.window.built_tabs().sweep
        sweep.views.setCurrentWidget(sweep.measures_view)
        shown = self._grab(MEASURES_FILE)
        sweep.views.setCurrentIndex(0)
        if not shown:
            return
        if self.guide_dir is not None and not self._save_guide(self.guide_dir):
            return
        QApplication.exit(0)

    def _grab(self, name: str) -> bool:
        """The window as it is now, to name in the output folder; False (the run failed) if not written.
        First the event loop runs a while: a page just shown lays out in steps (its legends refit their
        columns from the loop), and one pass caught a legend still in the columns of the hidden page."""
        loop = QEventLoop()
        QTimer.singleShot(SETTLE_MS, loop.quit)
        loop.exec()
        path = self.out_dir / name
        if not self.window.grab().save(str(path)):
            self._failed(f"could not write {path}")
            return False
        log.info("saved %s", path)
        return True

    def _save_guide(self, folder: Path) -> bool:
        """Each Guide picture: its panel exported as the app draws it, at most GUIDE_WIDTH wide, quantised."""
        from hsviewer.core.errors import HsviewerError
        from hsviewer.gui.figure_export import export_figure

        built = self.window.built_tabs()
        tabs: dict[str, ImageTab | HiddenTab | SweepTab] = {
            "image": built.image,
            "hidden": built.hidden,
            "sweep": built.sweep,
        }
        for name, (tab_name, title) in GUIDE_PICTURES.items():
            tab = tabs[tab_name]
            self.window.tabs.setCurrentWidget(tab)
            QApplication.processEvents()
            path = folder / name
            try:
                folder.mkdir(parents=True, exist_ok=True)
                export_figure(tab.plots()[title], path)
                _shrink(path)
            except (HsviewerError, OSError) as e:
                self._failed(f"could not write {path}: {e}")
                return False
            log.info("saved %s", path)
        return True

    def _timed_out(self) -> None:
        self._failed("timed out waiting for the analyses")

    def _failed(self, message: str) -> None:
        print(f"hsviewer: screenshots failed: {message}", file=sys.stderr, flush=True)
        QApplication.exit(1)
