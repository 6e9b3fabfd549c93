"""The main window: four tabs over two worker threads, menus, drag and drop, status bar.

Only PySide6 is imported here: the tabs (pyqtgraph, numpy, hsviewer.core) are imported and
built by build_tabs(), which app.main calls once the bare window is on screen.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from PySide6.QtCore import QEvent, QObject, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QShortcut,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QBoxLayout,
    QComboBox,
    QFileDialog,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QWidget,
)

from hsviewer.core.errors import failure_message
from hsviewer.gui.job_wiring import connect_job
from hsviewer.gui.settings import Settings
from hsviewer.gui.worker import Job, Worker, sender_job
from hsviewer.state.actions import MENU, MenuEntry
from hsviewer.state.app import AppState
from hsviewer.state.jobs import NO_HANDLERS, JobHandlers, JobLike

if TYPE_CHECKING:
    from hsviewer.gui.hidden_tab import HiddenTab
    from hsviewer.gui.image_tab import ImageTab
    from hsviewer.gui.model_options import LoadOptions
    from hsviewer.gui.runs_panel import RunsTab
    from hsviewer.gui.sweep_tab import SweepTab
    from hsviewer.gui.tabs import ExportingTab, RunViewer, SettingsTab
    from hsviewer.state.model import ModelInfo

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)) + ");;All files (*)"
ALL_PANELS = "All panels of this tab"
TAB_NAMES = ("Image SVD", "Hidden state", "Layer sweep", "Runs")
TAB_PURPOSES = (  # what each tab is for, in one line atop the first tab (each tab's tooltip says more)
    "the SVD on a picture",
    "one layer of a model reduced",
    "every layer in turn",
    "saved runs",
)
TAB_TIPS = (
    "The SVD on a picture: set k and see what the strongest components keep",
    "Reduce one layer's hidden state, then put the reduction into the forward pass and see how far it travels",
    "Reduce each layer in turn (one text or a corpus): components kept, loss and KL layer by layer",
    "The runs saved so far: reopen, rename, delete or compare them",
)
DEFAULT_SIZE = QSize(1600, 1000)  # shrunk to the screen's free area
FRAME_WAIT_MS = 300  # long enough for a window manager to frame a new window


class MainWindow(QMainWindow):
    """One shared model (on the model worker); image SVDs on their own worker so they never wait for it."""

    error_occurred = Signal(str)
    model_loaded = Signal(object)  # ModelInfo
    job_submitted = Signal(object)  # a Job, before its worker sees it
    job_done = Signal(str)  # a job's name, once its result (a cancelled one's partial result) is drawn

    def __init__(self, settings: Settings | None = None, defer_tabs: bool = False) -> None:
        """defer_tabs: leave the tabs to a later build_tabs() call, so the window can show first."""
        super().__init__()
        self.settings = settings or Settings()
        self.state = AppState()  # the model, the jobs, the runs: what the tabs and the status bar show
        self.tried_options: LoadOptions | None = None  # those of the last load asked for, for its dialog
        self.ready_announced = False
        self.refit_when_framed = True  # once, after the first show; off where a size is asked for
        self._closed = False
        self.close_wait_ms: int | None = None  # None: closing waits for the workers however long
        self.error_dialogs = True  # False: errors are logged and signalled (error_occurred), no modal box shows
        self.image_tab: ImageTab | None = None
        self.hidden_tab: HiddenTab | None = None
        self.sweep_tab: SweepTab | None = None
        self.runs_tab: RunsTab | None = None
        self.guide: QWidget | None = None  # Help > Guide, made when first asked for
        self.model_worker = Worker("hsviewer-model")
        self.image_worker = Worker("hsviewer-image")
        self.tabs = QTabWidget()
        for name in TAB_NAMES:
            self.tabs.addTab(QLabel("Preparing the plots…"), name)
        self._tab_tips()
        self.setCentralWidget(self.tabs)
        self.setWindowTitle("hsviewer")
        self.setAcceptDrops(True)
        self._shortcuts: set[QKeySequence] = set()
        self.actions_of: dict[MenuEntry, QAction] = {}
        self._build_menus()
        self._tab_keys()
        self._shortcut_guard = _ShortcutsFirst(self._shortcuts, self)
        self._build_status_bar()
        self._observe_state()
        if not self.restoreGeometry(self.settings.geometry()):
            self.resize(DEFAULT_SIZE)
        self.fit_to_screen()
        if not defer_tabs:
            self.build_tabs()

    def fit_to_screen(self) -> None:
        """Keep the window (frame included) inside its screen's free area: a geometry saved on a bigger
        screen, or the default size, must not leave the window larger than this one."""
        # Not self.screen(): called before the first show, it made a later garbage collection crash (tests).
        screen = QGuiApplication.primaryScreen()
        if screen is None:
            return
        free = screen.availableGeometry()
        frame = self.frameGeometry()
        extra = frame.size() - self.geometry().size()  # the window manager's frame (0 before it is shown)
        size = self.size().boundedTo(free.size() - extra)
        if self.isMaximized() or self.isFullScreen():
            return
        self.resize(size)
        outer = QRect(self.frameGeometry().topLeft(), size + extra)
        x = min(max(outer.left(), free.left()), free.right() + 1 - outer.width())
        y = min(max(outer.top(), free.top()), free.bottom() + 1 - outer.height())
        self.move(x, y)

    def _fit_frame(self, shown: QSize) -> None:
        """Fit again now that a window manager has framed the window, unless a size was chosen since it
        showed (a user's, a screenshot's): that one stays."""
        if self.size() == shown and self.frameGeometry().size() != self.geometry().size():
            self.fit_to_screen()

    def build_tabs(self) -> None:
        """Import pyqtgraph and the core, and build the tabs in place of their placeholders."""
        from hsviewer.core.library.store import Library
        from hsviewer.gui.garbage import collect_on_gui_thread
        from hsviewer.gui.hidden_tab import HiddenTab
        from hsviewer.gui.image_tab import ImageTab
        from hsviewer.gui.runs_panel import RunsTab
        from hsviewer.gui.sweep_tab import SweepTab

        collect_on_gui_thread()  # jobs start only from the tabs, so before any worker allocates
        self.image_tab = ImageTab(self.submit)
        self.hidden_tab = HiddenTab(self.submit, self.settings.recent_models())
        text = self.hidden_tab.text
        self.sweep_tab = SweepTab(self.submit, self.state, text.toPlainText, set_text=text.setPlainText)
        shows_runs: tuple[RunViewer, ...] = (self.hidden_tab, self.sweep_tab)
        viewers = {kind: tab for tab in shows_runs for kind in tab.kinds}
        self.state.runs.library = Library()
        self.runs_tab = RunsTab(self.state.runs, viewers, self._bring_to_front)
        self.tabs.clear()
        tabs = (self.image_tab, self.hidden_tab, self.sweep_tab, self.runs_tab)
        for tab, name in zip(tabs, TAB_NAMES, strict=True):
            self.tabs.addTab(tab, name)
        self._tab_tips()
        self.purposes = QLabel(" · ".join(f"<b>{n}</b>: {p}" for n, p in zip(TAB_NAMES, TAB_PURPOSES, strict=True)))
        self.purposes.setStyleSheet("color: #555555")
        self.purposes.setToolTip("Hover a tab for more; Help > Guide (F1) explains every panel")
        image_layout = self.image_tab.layout()
        assert isinstance(image_layout, QBoxLayout)  # the tab's own; to the stubs any QLayout, or None
        image_layout.insertWidget(0, self.purposes)  # the first screen: what each tab is for
        self._connect_tabs()
        for kind in (QAbstractSpinBox, QLineEdit, QComboBox, QPlainTextEdit):
            for widget in self.findChildren(kind):
                widget.installEventFilter(self._shortcut_guard)
        self._restore_settings()
        self.runs_tab.restore_latest()
        self.state.set_ready()
        self.status.setText("Ready")

    def built_tabs(self) -> BuiltTabs:
        """The four tabs, which build_tabs() made (before it, each attribute is None)."""
        image, hidden, sweep, runs = self.image_tab, self.hidden_tab, self.sweep_tab, self.runs_tab
        if image is None or hidden is None or sweep is None or runs is None:
            raise RuntimeError("the tabs are not built yet: build_tabs() comes first")
        return BuiltTabs(image, hidden, sweep, runs)

    def current_tab(self) -> ExportingTab:
        """The tab in front, which File > Export figure and Export data work on (the menus are off until
        the tabs are built, in BuiltTabs' order)."""
        tabs: tuple[ExportingTab, ...] = self.built_tabs()  # mypy checks that each tab is one
        return tabs[self.tabs.currentIndex()]

    def _bring_to_front(self, tab: object) -> None:
        """Show this tab (the Runs tab's Open: the one that redrew the run)."""
        if isinstance(tab, QWidget):
            self.tabs.setCurrentWidget(tab)

    def _tab_tips(self) -> None:
        for index, tip in enumerate(TAB_TIPS[: self.tabs.count()]):
            self.tabs.setTabToolTip(index, tip)

    def _connect_tabs(self) -> None:
        image, hidden, sweep, runs = self.built_tabs()
        image.open_file_requested.connect(self.open_image_dialog)
        image.open_url_requested.connect(self.open_url_dialog)
        hidden.picker.load_requested.connect(self.load_model)
        hidden.error.connect(self.report_error)
        sweep.error.connect(self.report_error)
        runs.error.connect(self.report_error)
        runs.opened.connect(self.status.setText)  # not a cancelled job's line, left from before

    def _observe_state(self) -> None:
        """The status bar, the menus and the title follow the app's state."""
        self.state.jobs.changed.connect(self._show_busy)
        self.state.model_changed.connect(self._show_model)
        self.state.ready_changed.connect(self._enable_actions)
        self.state.runs.save_failed.connect(self._show_save_failed)

    def _show_save_failed(self, message: str) -> None:
        self.statusBar().showMessage(message)  # until the next job starts

    def _build_menus(self) -> None:
        """The menus from the table of entries (hsviewer.state.actions.MENU), in its order."""
        menus = {}
        for entry in MENU:
            if entry.menu not in menus:
                menus[entry.menu] = self.menuBar().addMenu(entry.menu)
            if entry.separator_before:
                menus[entry.menu].addSeparator()
            self.actions_of[entry] = self._action(entry)
            menus[entry.menu].addAction(self.actions_of[entry])
        self._enable_actions()

    def _enable_actions(self) -> None:
        for entry, action in self.actions_of.items():
            action.setEnabled(entry.enabled_when(self.state))

    def _tab_keys(self) -> None:
        """Ctrl+Tab and Ctrl+Shift+Tab go round the tabs, from the last to the first and back: the window's
        own shortcuts, as a focused table or the sweep's inner pages would otherwise take the keys and stop."""
        for keys, step in (("Ctrl+Tab", 1), ("Ctrl+Shift+Tab", -1), ("Ctrl+PgDown", 1), ("Ctrl+PgUp", -1)):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(functools.partial(self.step_tab, step))
            self._shortcuts.add(QKeySequence(keys))

    def step_tab(self, step: int) -> None:
        """The tab `step` places on, wrapping round at either end."""
        count = self.tabs.count()
        if count:
            self.tabs.setCurrentIndex((self.tabs.currentIndex() + step) % count)

    def _action(self, entry: MenuEntry) -> QAction:
        """A menu entry's action, calling its command with no argument, with its shortcut spelled out
        (standard keys are empty on some platforms)."""
        action = QAction(entry.text, self)
        if entry.shortcut:
            action.setShortcut(QKeySequence(entry.shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self._shortcuts.add(QKeySequence(entry.shortcut))
        action.triggered.connect(getattr(self, entry.command))
        return action

    def _build_status_bar(self) -> None:
        self.status = QLabel("Starting…")
        self.model_status = QLabel("")  # the loaded model, its precision, device and memory plan
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setShortcut(QKeySequence("Esc"))
        self.cancel_button.setToolTip("Stop what is running (Esc); a sweep stops after its current layer")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        bar = self.statusBar()
        bar.addWidget(self.status, 1)
        bar.addPermanentWidget(self.model_status)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)

    # Jobs ---------------------------------------------------------------------------------

    def submit(self, job: Job, handlers: JobHandlers = NO_HANDLERS) -> None:
        """Run a job on its worker (the model's, or the image worker so SVDs never wait for the
        model): its handlers (what the tab that made it wants) first, then the status bar follow it."""
        worker = self.model_worker if job.needs_model else self.image_worker
        connect_job(job, handlers)
        connect_job(job, self._following)
        self.state.jobs.add(job)
        self.job_submitted.emit(job)
        worker.submit(job)

    @property
    def jobs(self) -> list[JobLike]:
        """The jobs submitted and not yet finished."""
        return self.state.jobs.jobs

    @property
    def model_info(self) -> ModelInfo | None:
        return self.state.model

    def workers_running(self) -> bool:
        return self.model_worker.running() or self.image_worker.running()

    def busy(self) -> bool:
        return self.state.jobs.busy

    def cancel(self) -> None:
        """Cancel every job running or queued: each stops at its next event."""
        if self.state.jobs.cancel_all():
            self.status.setText("Cancelling…")

    def load_model(self, source: str, options: LoadOptions | None = None) -> None:
        """Load with these options (the Choose model dialog's: precision, device, memory budget, threads),
        else the ones in the settings. Options are remembered only once a load with them works: a refused
        budget is never saved. A load that fails or is refused leaves the model loaded before in place."""
        from hsviewer.core.errors import HsviewerError
        from hsviewer.gui.jobs import load_model_job
        from hsviewer.gui.model_options import LoadOptions

        source = source.strip() or "default"
        chosen = options or LoadOptions.restore(self.settings)
        self.tried_options = chosen
        try:
            spec = chosen.spec(source)
        except HsviewerError as e:
            self.report_load_error(str(e))
            return
        self.status.setText(f"Loading model {source}…")
        job = load_model_job(spec)
        self.submit(job, JobHandlers(on_result=functools.partial(self._model_ready, chosen)))

    @property
    def _following(self) -> JobHandlers:
        """The status bar's part in every job: bound methods that ask sender() for the job (a
        lambda holding the job would keep it alive)."""
        return JobHandlers(
            on_started=self._job_started,
            on_event=self._job_progress,
            on_result=self._job_returned,
            on_failed=self._job_failed,
            on_cancelled=self._job_cancelled,
            on_finished=self._job_finished,
        )

    def _sender_job(self) -> Job:
        return sender_job(self)

    def _job_started(self) -> None:
        if not self._closed:
            self.statusBar().clearMessage()
            self.status.setText(f"{self._sender_job().description}…")

    def _job_progress(self, event: object) -> None:
        from hsviewer.core.events import Step

        self.state.runs.saw(event)
        if self._closed or not isinstance(event, Step):
            return
        self.status.setText(event.message)
        self.progress.setRange(0, event.total)
        self.progress.setValue(event.done)

    def _job_returned(self, result: object) -> None:
        if self._closed:
            return
        job = self._sender_job()
        if self.state.jobs.only(job):
            self.status.setText("Ready")
        self.job_done.emit(job.name)

    def _job_failed(self, error: BaseException) -> None:
        if not self._closed:
            job = self._sender_job()
            self.status.setText(f"{job.description} failed")
            message = failure_message(error, job.description)
            (self.report_load_error if job.name == "model" else self.report_error)(message)

    def _job_cancelled(self) -> None:
        if not self._closed:
            job = self._sender_job()
            self.status.setText(f"{job.description} cancelled")
            self.job_done.emit(job.name)

    def _job_finished(self) -> None:
        self.state.jobs.remove(self._sender_job())

    def _show_busy(self, busy: bool) -> None:
        if self._closed:
            return
        self.progress.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        if busy:
            self.progress.setRange(0, 0)

    def _model_ready(self, options: LoadOptions, info: ModelInfo) -> None:
        """A load worked: its options are remembered, and the model is the app's."""
        options.save(self.settings)
        self.settings.remember_model(info.source)
        self.state.set_model(info)

    def _show_model(self, info: ModelInfo) -> None:
        hidden = self.built_tabs().hidden
        hidden.picker.set_recent(self.settings.recent_models())
        hidden.set_model(info)
        self.model_status.setText(info.describe())
        self.setWindowTitle(f"hsviewer — {info.name}")
        self.model_loaded.emit(info)
        self._announce_ready()

    def _announce_ready(self) -> None:
        """Tell a waiting packaging check (on stderr) that the window is up with a model."""
        if self.isVisible() and self.model_info is not None and not self.ready_announced:
            self.ready_announced = True
            print("hsviewer ready", file=sys.stderr, flush=True)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._announce_ready()
        if self.refit_when_framed:
            # The window manager adds its frame (title bar) only after the first show: fit again then,
            # or a window as tall as the screen loses its status bar below the bottom edge.
            self.refit_when_framed = False
            shown = self.size()
            refit = QTimer(self)  # a child: it dies with the window, never calling into a deleted one
            refit.setSingleShot(True)
            refit.timeout.connect(lambda: self._fit_frame(shown))
            refit.start(FRAME_WAIT_MS)

    # Errors -------------------------------------------------------------------------------

    def report_error(self, message: str) -> None:
        """Every user-facing error ends here: logged, signalled, shown in a dialog."""
        log.error("%s", message)
        self.error_occurred.emit(message)
        if self.error_dialogs:
            self.show_error(message)

    def show_error(self, message: str) -> None:
        QMessageBox.warning(self, "hsviewer", message)

    def report_load_error(self, message: str) -> None:
        """A model that did not load: as report_error, with a way to the dialog that changes how to load."""
        log.error("%s", message)
        self.error_occurred.emit(message)
        if self.error_dialogs:
            self.show_load_error(message)

    def show_load_error(self, message: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "hsviewer", message, QMessageBox.StandardButton.Close, self)
        choose = box.addButton("Choose model…", QMessageBox.ButtonRole.AcceptRole)
        choose.setToolTip("Open File > Choose model: another model, precision, device or memory budget")
        box.setDefaultButton(choose)
        box.exec()
        clicked = box.clickedButton()
        box.deleteLater()
        if clicked is choose:
            self.choose_model_dialog(self.tried_options)

    # Menu actions -------------------------------------------------------------------------

    def open_image(self, source: str) -> None:
        image = self.built_tabs().image
        self.tabs.setCurrentWidget(image)
        image.open(source)

    def open_image_dialog(self) -> None:
        source = self.built_tabs().image.source
        start = str(Path(source).parent) if source else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open image", start, IMAGE_FILTER)
        if path:
            self.open_image(path)

    def open_url_dialog(self) -> None:
        from hsviewer.gui.dialogs import ask_url

        url = ask_url(self)
        if url:
            self.open_image(url)

    def choose_model_dialog(self, options: LoadOptions | None = None) -> None:
        """File > Choose model, showing these options (a refused load's) or the remembered ones."""
        from hsviewer.gui.dialogs import ChooseModelDialog
        from hsviewer.gui.model_options import LoadOptions

        current = self.model_info.source if self.model_info else "default"
        options = options or LoadOptions.restore(self.settings)
        dialog = ChooseModelDialog(self.settings.recent_models(), current, self, submit=self.submit, options=options)
        if dialog.exec():
            self.load_model(dialog.source(), dialog.options())
        dialog.deleteLater()

    def converted_models_dialog(self) -> None:
        from hsviewer.gui.cache_dialog import ConvertedModelsDialog

        loaded = self.model_info.cache_folder if self.model_info else ""
        dialog = ConvertedModelsDialog(self.submit, loaded, self)
        dialog.exec()
        dialog.deleteLater()

    def show_guide(self) -> None:
        """The guide beside the window (one of it), raised if it is already open."""
        from hsviewer.gui.guide import GuideWindow

        if self.guide is None:
            self.guide = GuideWindow(self)
        self.guide.show()
        self.guide.raise_()
        self.guide.activateWindow()

    def show_about(self) -> None:
        from hsviewer.gui.dialogs import about_text

        name = self.model_info.name if self.model_info else ""
        licence = self.model_info.licence if self.model_info else ""
        QMessageBox.about(self, "About hsviewer", about_text(name, licence))

    def export_figure_dialog(self) -> None:
        names = [ALL_PANELS, *self.current_tab().plots()]
        name, ok = QInputDialog.getItem(self, "Export figure", "Panel:", names, 0, False)
        if not ok:
            return
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export figure", self.settings.folder("figure"), "PNG image (*.png);;SVG drawing (*.svg)"
        )
        if not path:
            return
        path = _with_suffix(path, chosen)
        scale = 1
        if Path(path).suffix.lower() == ".png":
            from hsviewer.gui.figure_export import PNG_SCALES

            scales = [f"{s}x" for s in PNG_SCALES]
            chosen_scale, ok = QInputDialog.getItem(
                self, "Export figure", "PNG size (times the screen):", scales, 1, False
            )
            if not ok:
                return
            scale = int(chosen_scale.rstrip("x"))
        self._try(self.export_figure, path, name, scale)

    def export_figure(self, path: str, panel: str = ALL_PANELS, scale: int = 1) -> None:
        """Write one panel of the current tab, or all of them, as .svg or as .png at 1, 2 or 4 times its size."""
        from hsviewer.gui.figure_export import export_figure

        tab = self.current_tab()
        item = tab.graphics.ci if panel == ALL_PANELS else tab.plots()[panel]
        export_figure(item, path, scale)
        self.settings.remember_folder("figure", path)
        self.status.setText(f"Saved {path}")

    def export_data_dialog(self) -> None:
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export data", self.settings.folder("data"), "JSON (*.json);;CSV table (*.csv)"
        )
        if path:
            self._try(self.export_data, _with_suffix(path, chosen))

    def export_data(self, path: str) -> None:
        """Write the current tab's result as JSON (the CLI's schema) or CSV."""
        from hsviewer.core.errors import HsviewerError
        from hsviewer.core.library import writing as export

        found = self.current_tab().exportable()
        if found is None:
            raise HsviewerError("This tab has no result to export yet.")
        export.write_data(path, *found)
        self.settings.remember_folder("data", path)
        self.status.setText(f"Saved {path}")

    def _try(self, action: Any, *args: Any) -> None:
        from hsviewer.core.errors import HsviewerError

        try:
            action(*args)
        except HsviewerError as e:
            self.report_error(str(e))

    # Drag and drop ------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_path(paths[0])

    def open_path(self, path: str) -> None:
        """A dropped path: a model folder or .gguf loads as the model, an image file opens in the image tab."""
        p = Path(path)
        if p.is_dir() or p.suffix.lower() == ".gguf":
            self.load_model(str(p))
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            self.open_image(str(p))
        else:
            self.report_error(f"{p.name} is neither an image nor a model (a model folder or a .gguf file).")

    # Settings and closing -----------------------------------------------------------------

    def _restore_settings(self) -> None:
        s = self.settings
        for tab in self.built_tabs().with_settings():
            tab.restore_settings(s)
        self.tabs.setCurrentIndex(s.get("window/tab", 0, int))

    def save_settings(self) -> None:
        s = self.settings
        s.set("window/geometry", self.saveGeometry())
        if self.image_tab is not None:
            s.set("window/tab", self.tabs.currentIndex())
            for tab in self.built_tabs().with_settings():
                tab.save_settings(s)
        s.save()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Save the settings, then cancel the jobs and stop both workers: a sweep stops after its current layer."""
        if not self._closed:
            self._closed = True
            try:
                self.save_settings()
            finally:  # a thread left running would abort the app when its QThread is freed
                self.hide()  # gone at once, even while the workers finish their current step
                if self.guide is not None:
                    self.guide.close()
                self.state.jobs.cancel_all()
                self.model_worker.stop(self.close_wait_ms)
                self.image_worker.stop(self.close_wait_ms)
        event.accept()


class BuiltTabs(NamedTuple):
    """The window's four tabs, in their order."""

    image: ImageTab
    hidden: HiddenTab
    sweep: SweepTab
    runs: RunsTab

    def with_settings(self) -> tuple[SettingsTab, ...]:
        """The tabs whose inputs are saved and restored (the Runs tab has none)."""
        return self.image, self.hidden, self.sweep


class _ShortcutsFirst(QObject):
    """The window's menu shortcuts win over a focused input that would claim the same keys: on X11 a
    spin box's line edit takes Ctrl+U ("delete to start of line") and Ctrl+E ("end of line").
    Installed on the tabs' inputs (an application-wide filter would run Python for every event)."""

    def __init__(self, shortcuts: set[QKeySequence], window: MainWindow) -> None:
        super().__init__(window)
        self.shortcuts = shortcuts  # not the window: a cycle through it would have the collector free it

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.ShortcutOverride or not isinstance(event, QKeyEvent):
            return False
        if QKeySequence(event.keyCombination()) in self.shortcuts:
            event.ignore()  # not overridden: the shortcut map runs the window's action
            return True
        return False


def _with_suffix(path: str, chosen_filter: str) -> str:
    """The path with the suffix of the chosen file filter when the user typed none."""
    if Path(path).suffix:
        return path
    suffix = chosen_filter.split("*")[-1].rstrip(")") if "*" in chosen_filter else ""
    return path + suffix
