"""File > Converted models: the GGUF models converted once and kept in the cache, their sizes, and
deleting them to free the space (as `hsviewer cache list|clear`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from hsviewer.core.errors import failure_message
from hsviewer.core.model.memory import format_size
from hsviewer.gui.worker import Job
from hsviewer.state.jobs import JobHandlers

if TYPE_CHECKING:
    from hsviewer.core.model.gguf_cache import CachedModel
    from hsviewer.gui.job_wiring import Submit

HEADERS = ["Model", "Precision", "Size on disk", "Converted from"]
NAME_ROLE = Qt.ItemDataRole.UserRole
LOADED_NOTE = "it stays in memory while loaded, and is converted again the next time it is loaded"


class ConvertedModelsDialog(QDialog):
    """The cache's converted models in a table; the listing and the deleting run on the worker
    (the cache module imports torch). `loaded`: the folder of the model loaded now, if converted."""

    def __init__(self, submit: Submit, loaded: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Converted models")
        self._submit = submit
        self._job: Job | None = None
        self.loaded = loaded
        self.cached: list[CachedModel] = []
        self.table_model = QStandardItemModel(0, len(HEADERS), self)
        self.table_model.setHorizontalHeaderLabels(HEADERS)
        self.table = QTableView()
        self.table.setModel(self.table_model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.total = QLabel("")
        self.total.setWordWrap(True)
        self.total.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.note = QLabel(
            "A GGUF model is converted to safetensors the first time it is loaded, so that later loads are "
            "fast. Deleting a conversion frees its space; the model is converted again when next loaded."
        )
        self.note.setWordWrap(True)
        self.refresh_button = QPushButton("Refresh")
        self.delete_button = QPushButton("Delete selected…")
        self.clear_button = QPushButton("Clear all…")
        self.refresh_button.clicked.connect(self.refresh)
        self.delete_button.clicked.connect(self.delete_selected)
        self.clear_button.clicked.connect(self.clear_all)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        row = QHBoxLayout()
        for button in (self.refresh_button, self.delete_button, self.clear_button):
            row.addWidget(button)
        row.addStretch(1)
        row.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.total)
        layout.addLayout(row)
        self.finished.connect(self._cancel)
        self.resize(900, 420)
        self.refresh()

    def refresh(self) -> None:
        self._run()

    def delete_selected(self) -> None:
        chosen = self.selected()
        if not chosen:
            return
        names = "\n".join(f"  {_model_name(c)} ({c.dtype}, {size_text(c.size)})" for c in chosen)
        question = f"Delete {len(chosen)} converted model{'s' * (len(chosen) != 1)}?\n{names}"
        if self.confirm(question + self._loaded_note(chosen)):
            self._run(delete=[c.name for c in chosen])

    def clear_all(self) -> None:
        if not self.cached:
            return
        total = size_text(sum(c.size for c in self.cached))
        question = f"Delete every converted model ({len(self.cached)}, {total})?{self._loaded_note(self.cached)}"
        if self.confirm(question):
            self._run(clear_all=True)

    def confirm(self, question: str) -> bool:
        """Ask before deleting (tests answer in its place)."""
        answer = QMessageBox.question(self, "Converted models", question)
        return answer == QMessageBox.StandardButton.Yes

    def selected(self) -> list[CachedModel]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.cached[row] for row in rows]

    def _loaded_note(self, chosen: Sequence[CachedModel]) -> str:
        loaded = [c for c in chosen if self._is_loaded(c)]
        return f"\n\n{_model_name(loaded[0])} is loaded now: {LOADED_NOTE}." if loaded else ""

    def _is_loaded(self, cached: CachedModel) -> bool:
        return bool(self.loaded) and Path(self.loaded) == cached.folder

    def _run(self, delete: Sequence[str] = (), clear_all: bool = False) -> None:
        from hsviewer.gui.jobs import cached_models_job

        self._cancel()
        self._job = cached_models_job(delete, clear_all)
        failed = self._deletion_failed if delete or clear_all else self._failed
        self.total.setText("Deleting…" if delete or clear_all else "Reading the cache…")
        self._set_enabled(False)
        self._submit(self._job, JobHandlers(on_result=self._listed, on_failed=failed))

    def _cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def _listed(self, listing: tuple[str, list[CachedModel]]) -> None:
        if self.sender() is not self._job:
            return
        self._job = None
        root, self.cached = listing
        self.table_model.removeRows(0, self.table_model.rowCount())
        for cached in self.cached:
            self.table_model.appendRow(self._row(cached))
        for column in range(len(HEADERS) - 1):  # the source path takes the rest, elided in the middle
            self.table.resizeColumnToContents(column)
        count = len(self.cached)
        total = size_text(sum(c.size for c in self.cached))
        self.total.setText(f"{count} converted model{'s' * (count != 1)}, {total} on disk, in {root}")
        self._set_enabled(True)

    def _failed(self, error: BaseException) -> None:
        if self.sender() is self._job:
            self._job = None
            message = failure_message(error, "the converted models")
            self.total.setText(message)
            self._set_enabled(True)
            QMessageBox.warning(self, "Converted models", message)

    def _deletion_failed(self, error: BaseException) -> None:
        """What is left after a deletion that stopped partway; a listing that fails is not retried."""
        if self.sender() is self._job:
            self._failed(error)
            self.refresh()

    def _row(self, cached: CachedModel) -> list[QStandardItem]:
        loaded = self._is_loaded(cached)
        name = _model_name(cached) + (" (loaded)" if loaded else "")
        items = [QStandardItem(t) for t in (name, cached.dtype, size_text(cached.size), cached.source)]
        for item in items:
            tip = f"Converted from {cached.source}\ninto {cached.folder}"
            item.setToolTip(f"{tip}\nLoaded now: {LOADED_NOTE}" if loaded else tip)
            item.setData(cached.name, NAME_ROLE)
            if loaded:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
        items[2].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return items

    def _set_enabled(self, idle: bool) -> None:
        self.refresh_button.setEnabled(idle)
        self.clear_button.setEnabled(idle and bool(self.cached))
        self.delete_button.setEnabled(idle and bool(self.selected()))

    def _update_buttons(self) -> None:
        self._set_enabled(self._job is None)


def _model_name(cached: CachedModel) -> str:
    """The GGUF file's name without .gguf, or the cache folder's name when its manifest is unreadable."""
    return Path(cached.source).stem if cached.source != "?" else cached.name


def size_text(size: int) -> str:
    """Bytes in the unit that fits (GB, or MB below one GB), as `hsviewer cache list` and the plans print them."""
    return format_size(size)
