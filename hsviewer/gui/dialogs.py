"""Dialogs: choosing a model, asking for a URL, the About box."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QSize, QSortFilterProxyModel, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QGuiApplication, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

import hsviewer
from hsviewer.core.errors import failure_message
from hsviewer.core.model.discovery.found import FoundModel
from hsviewer.core.model.discovery.table import row_text
from hsviewer.gui.forms import ModelPicker
from hsviewer.gui.model_options import LoadOptions, LoadOptionsRow, field_refusal
from hsviewer.gui.worker import Job
from hsviewer.state.jobs import JobHandlers

if TYPE_CHECKING:
    from hsviewer.core.model.memory import MemoryPlan
    from hsviewer.gui.job_wiring import Submit

PLAN_DELAY_MS = 250  # typing in the source or budget field plans once it pauses, not on every key


class ChooseModelDialog(QDialog):
    """File > Choose model: the models found on this machine in a sortable, filterable table, and a
    free-text field for a path or hub id. The default model is first, then the recent ones; OK or a
    double-click loads the chosen model. Under the table: the precision, device and memory budget
    to load with, and the memory plan of the chosen model with them.

    submit runs the scan, the device probe and the plans off the GUI thread (the main window's
    submit); without it the table stays empty and the free-text field still works.
    """

    def __init__(
        self,
        recent: list[str],
        current: str,
        parent: QWidget | None = None,
        submit: Submit | None = None,
        options: LoadOptions | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose model")
        self.recent = list(recent)
        self._submit = submit
        self._job: Job | None = None
        self._plan_job: Job | None = None
        self.load_options = LoadOptionsRow(options or LoadOptions())
        self.plan = QLabel("")
        self.plan.setWordWrap(True)
        self.plan.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._plan_timer = QTimer(self)
        self._plan_timer.setSingleShot(True)
        self._plan_timer.setInterval(PLAN_DELAY_MS)
        self._plan_timer.timeout.connect(self.update_plan)
        self.models: list[FoundModel] = []
        self.status = QLabel("")
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter by name, kind, architecture, quantisation or path")
        self.filter.setClearButtonEnabled(True)
        self.table_model = QStandardItemModel(0, len(HEADERS), self)
        self.table_model.setHorizontalHeaderLabels(HEADERS)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.table_model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # found order until a click
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.selectionModel().currentRowChanged.connect(self._row_chosen)
        self.table.doubleClicked.connect(self._row_double_clicked)
        self.picker = ModelPicker(recent)
        self.picker.combo.setCurrentText(current)
        self.picker.load.hide()
        add = QPushButton("Add folder or file…")
        add.setToolTip("Remember a folder of models (or one model file): it is searched on every scan")
        menu = QMenu(add)
        menu.addAction("Folder…", self._add_folder)
        menu.addAction("GGUF file…", self._add_file)
        add.setMenu(menu)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(add)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        layout.addWidget(QLabel("Or type a model folder, a .gguf file, a hub id from the local cache, or 'default':"))
        layout.addWidget(self.picker)
        layout.addWidget(self.load_options)
        layout.addWidget(self.plan)
        layout.addWidget(buttons)
        self.finished.connect(self._cancel_scan)
        self.picker.combo.currentTextChanged.connect(self._plan_timer.start)
        self.load_options.changed.connect(self._plan_timer.start)
        self.resize(_fitted(QSize(1100, 600)))
        self.set_models([])
        self.scan()
        self._find_devices()
        self.update_plan()

    def source(self) -> str:
        """What to load: the chosen row's source string, or what was typed."""
        return self.picker.source()

    def scan(self) -> None:
        """Look for models on the worker; the table fills when the job returns."""
        if self._submit is None:
            return
        from hsviewer.gui.jobs import find_models_job

        self._cancel_scan()
        self.status.setText("Scanning…")
        self._job = find_models_job()
        self._submit(self._job, JobHandlers(on_result=self._scanned, on_failed=self._scan_failed))

    def options(self) -> LoadOptions:
        """The precision, device and memory budget to load with."""
        return self.load_options.options()

    def _cancel_scan(self) -> None:
        for job in (self._job, self._plan_job):
            if job is not None:
                job.cancel()

    def _find_devices(self) -> None:
        if self._submit is None:
            return
        from hsviewer.gui.jobs import devices_job

        self._submit(devices_job(), JobHandlers(on_result=self.load_options.set_devices))

    def update_plan(self) -> None:
        """Plan the chosen model with the chosen options on the worker; a bad budget is said at once
        and keeps OK disabled."""
        self._plan_timer.stop()
        if self._plan_job is not None:
            self._plan_job.cancel()
            self._plan_job = None
        problem = self.load_options.budget_problem()
        self.ok_button.setEnabled(not problem)
        source = self.source().strip()
        if problem or self._submit is None or not source:
            self._show_plan(problem, warn=bool(problem))
            return
        from hsviewer.core.errors import HsviewerError
        from hsviewer.gui.jobs import plan_job

        try:
            spec = self.options().spec(source)
        except HsviewerError as e:  # a choice the spec refuses: said where the plan goes
            self._show_plan(str(e), warn=True)
            return
        self._plan_job = plan_job(spec)
        self._show_plan("Planning memory…")
        self._submit(self._plan_job, JobHandlers(on_result=self._planned, on_failed=self._plan_failed))

    def _planned(self, plan: MemoryPlan | None) -> None:
        if self.sender() is not self._plan_job:  # an earlier plan, for other choices
            return
        self._plan_job = None
        if plan is None:
            self._show_plan(f"No memory plan: the files of {self.source()} do not say its size.")
        elif plan.fits:
            self._show_plan(f"{plan.describe()}.")
        else:
            self._show_plan(field_refusal(plan), warn=True)

    def _plan_failed(self, error: BaseException) -> None:
        if self.sender() is self._plan_job:
            self._plan_job = None
            self._show_plan(failure_message(error, "the memory plan"), warn=True)

    def _show_plan(self, text: str, warn: bool = False) -> None:
        self.plan.setText(text)
        self.plan.setStyleSheet("color: #b00020;" if warn else "")

    def _scanned(self, models: list[FoundModel]) -> None:
        if self.sender() is self._job:  # not an earlier scan that ended after a newer one began
            self._job = None
            self.set_models(models)
            problems = sum(1 for m in self.models if m.problem)
            note = f", {problems} with a problem (hover over it for why)" if problems else ""
            count = len(self.models)
            self.status.setText(f"{count} model{'s' * (count != 1)} found{note}.")

    def _scan_failed(self, error: BaseException) -> None:
        if self.sender() is self._job:
            self._job = None
            self.status.setText(f"Scanning failed: {failure_message(error, 'the scan')}")

    def set_models(self, models: list[FoundModel]) -> None:
        """Fill the table: the default model, the recent ones (most recent first), then the rest."""
        self.models = order_models(models, self.recent)
        found = {m.source for m in self.models}
        extra = [s for s in self.recent if s not in found]  # typed by hand earlier: a path, a hub id
        self.table_model.removeRows(0, self.table_model.rowCount())
        recent = set(self.recent)
        for model in self.models:
            self.table_model.appendRow(_row(model, recent=model.source in recent))
        for source in extra:
            model = FoundModel(name=source, source=source, kind="recent", path="")
            self.table_model.appendRow(_row(model, recent=True))
        self.table.resizeColumnsToContents()
        for column in (HEADERS.index("Name"), HEADERS.index("Source")):
            self.table.setColumnWidth(column, min(self.table.columnWidth(column), 360))

    def row_source(self, row: int) -> str:
        """The source string of the row shown at `row` (after sorting and filtering)."""
        return str(self.proxy.index(row, 0).data(SOURCE_ROLE))

    def _row_chosen(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.picker.combo.setCurrentText(str(current.siblingAtColumn(0).data(SOURCE_ROLE)))

    def _row_double_clicked(self, index: QModelIndex) -> None:
        self._row_chosen(index, QModelIndex())
        self.accept()

    def _add_folder(self) -> None:
        self._add(QFileDialog.getExistingDirectory(self, "Add a folder of models"))

    def _add_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a GGUF model file", "", "GGUF models (*.gguf)")
        self._add(path)

    def _add(self, path: str) -> None:
        """Remember a folder or file for every later scan, and scan again."""
        if not path:
            return
        from hsviewer.core.errors import HsviewerError
        from hsviewer.core.model.discovery.remembered import remember_path

        try:
            remember_path(path)
        except HsviewerError as e:
            QMessageBox.warning(self, "hsviewer", str(e))
            return
        self.scan()


HEADERS = ["Name", "Kind", "Architecture", "Parameters", "Layers", "Hidden", "Quantisation", "Size", "Memory", "Source"]
SOURCE_ROLE = Qt.ItemDataRole.UserRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


def _fitted(size: QSize) -> QSize:
    """The size, no larger than the screen's free area less room for the window frame (1024 x 700 screens)."""
    screen = QGuiApplication.primaryScreen()
    return size if screen is None else size.boundedTo(screen.availableGeometry().size() - QSize(40, 60))


def order_models(models: list[FoundModel], recent: list[str]) -> list[FoundModel]:
    """The default model first, then the recently used ones in the order used, then the rest as found."""
    rank = {source: i for i, source in enumerate(recent)}

    def key(item: tuple[int, FoundModel]) -> tuple[int, int, int]:
        index, model = item
        if model.kind == "default":
            return (0, 0, index)
        if model.source in rank:
            return (1, rank[model.source], index)
        return (2, 0, index)

    return [m for _, m in sorted(enumerate(models), key=key)]


def _row(model: FoundModel, recent: bool) -> list[QStandardItem]:
    texts = row_text(model)
    sort_keys: list[Any] = [
        model.name.lower(),
        model.kind,
        (model.architecture or "").lower(),
        model.parameters or -1,
        model.layers or -1,
        model.hidden_size or -1,
        (model.quantisation or "").lower(),
        model.file_bytes or -1,
        model.memory_bytes or -1,
        model.source.lower(),
    ]
    tip = model.path or model.source
    if model.problem:
        tip = f"{tip}\n{model.problem}"
    if model.parameters_estimated:
        tip = f"{tip}\nParameters estimated from config.json"
    items = []
    for text, sort_key in zip(texts, sort_keys, strict=True):
        item = QStandardItem(text)
        item.setData(sort_key, SORT_ROLE)
        item.setData(model.source, SOURCE_ROLE)
        item.setToolTip(tip)
        if recent:
            font = item.font()
            font.setBold(True)
            item.setFont(font)
        if model.problem:
            item.setForeground(QBrush(QColor("gray")))
        items.append(item)
    items[0].setToolTip(f"Recently used\n{tip}" if recent else tip)
    return items


def ask_url(parent: QWidget) -> str:
    """An image URL from the user, or '' when cancelled."""
    dialog = url_dialog(parent)
    try:
        return dialog.textValue().strip() if dialog.exec() else ""
    finally:
        dialog.deleteLater()


URL_DIALOG_WIDTH = 560  # a whole URL shows, and no window manager cuts the title


def url_dialog(parent: QWidget | None) -> QInputDialog:
    dialog = QInputDialog(parent)
    dialog.setWindowTitle("Open image URL")
    dialog.setLabelText("Image URL (http or https):")
    dialog.setInputMode(QInputDialog.InputMode.TextInput)
    # QInputDialog's layout sets its own minimum from its children's: widen the field, not the dialog
    field = dialog.findChild(QLineEdit)
    assert field is not None  # a text-input QInputDialog has one
    field.setMinimumWidth(URL_DIALOG_WIDTH)
    return dialog


def about_text(model_name: str, licence: str) -> str:
    model = html.escape(model_name or "none loaded")
    terms = html.escape(licence or "unknown")
    return (
        f"<h3>hsviewer {hsviewer.__version__}</h3>"
        "<p>How much of a language model's hidden state survives dimensionality reduction (SVD).</p>"
        f"<p><b>Model in use:</b> {model}<br><b>Licence:</b> {terms}</p>"
        "<p>After project 29 of Mike X Cohen's <i>50 ML projects to understand LLMs</i>.</p>"
    )
