"""The Runs tab: every run saved in the library, to filter, rename, delete, reopen and compare.

Opening a run hands it to the tab that draws its kind (show_run), which redraws it without
computing; at start the newest run of each kind is redrawn the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from hsviewer.core.errors import HsviewerError
from hsviewer.core.library.store import Library, Listing, RunInfo
from hsviewer.gui.compare_view import CompareView
from hsviewer.gui.forms import inputs_beside_plots

if TYPE_CHECKING:
    from hsviewer.gui.tabs import RunViewer
    from hsviewer.state.runs import RunsState

COLUMNS = ("Name", "Kind", "Model", "Setting", "Saved")
INFO_ROLE = Qt.ItemDataRole.UserRole + 1


class RunsTab(QWidget):
    """The library's runs in a table on the left, the comparison of the selected ones on the right."""

    error = Signal(str)
    opened = Signal(str)  # a run was redrawn in its tab: one line for the status bar

    def __init__(
        self,
        runs: RunsState,
        viewers: Mapping[str, RunViewer],
        show_tab: Callable[[RunViewer], None],
        parent: QWidget | None = None,
    ) -> None:
        """runs: the listing it draws (its library set); viewers: kind -> the tab that draws it (with
        show_run); show_tab brings one to the front."""
        super().__init__(parent)
        assert runs.library is not None, "the runs state's library is set before its tab is made"
        self.runs = runs
        self.library: Library = runs.library
        self.viewers = viewers
        self._show_tab = show_tab
        self.model = QStandardItemModel(0, len(COLUMNS))
        self.model.setHorizontalHeaderLabels(COLUMNS)
        self.model.itemChanged.connect(self._renamed)
        self.proxy = QSortFilterProxyModel()
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.compare_view = CompareView()
        self.compare_view.error.connect(self.error)
        self.graphics = self.compare_view.graphics  # for File > Export figure
        inputs_beside_plots(self, self._build_list(), self.compare_view, 520)
        runs.listed.connect(self._show_listing)
        self.refresh()

    def _build_list(self) -> QWidget:
        box = QWidget()
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter by name, kind, model, setting or date")
        self.filter.setToolTip("Show only the runs whose columns contain this text")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COLUMNS.index("Saved"), Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.EditKeyPressed | QAbstractItemView.EditTrigger.SelectedClicked
        )
        # Names and settings wrap onto more lines rather than lose their middle ("sweep Smo…truct 95%");
        # a word too long for its column (a model's name) loses its end, and its tooltip says it whole.
        self.table.setWordWrap(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COLUMNS.index("Name"), QHeaderView.ResizeMode.Stretch)
        for column, width in (("Model", 120), ("Setting", 110)):
            header.setSectionResizeMode(COLUMNS.index(column), QHeaderView.ResizeMode.Interactive)
            header.resizeSection(COLUMNS.index(column), width)
        self.table.setToolTip("Double-click a run to redraw it in its tab; F2 renames it; select several to compare")
        self.table.doubleClicked.connect(self._open_index)
        buttons = QHBoxLayout()
        for text, tip, slot in (
            ("Open", "Redraw the selected run in its tab, without computing", self.open_selected),
            ("Rename", "Give the selected run a name of your own (or press F2)", self._rename_selected),
            ("Delete…", "Remove the selected runs from the library, after asking", self.delete_selected),
            (
                "Compare selected",
                "Overlay the selected runs' per-layer curves on relative depth",
                self.compare_selected,
            ),
        ):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.filter)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        return box

    # The list -----------------------------------------------------------------------------

    def refresh(self, select: str | None = None) -> None:
        """Read the library again; `select`: the id of a run to select."""
        self.runs.refresh(select)

    def _show_listing(self, listing: Listing, select: str | None) -> None:
        self.model.blockSignals(True)
        self.model.removeRows(0, self.model.rowCount())
        for info in listing.runs:
            self.model.appendRow(self._row(info))
        self.model.blockSignals(False)
        self.proxy.invalidate()
        skipped = (
            f"; skipped {len(listing.problems)} unreadable: " + " ".join(listing.problems) if listing.problems else ""
        )
        count = len(listing.runs)
        self.status.setText(f"{count} run{'s' * (count != 1)} in {self.library.folder}{skipped}")
        if select is not None:
            self.select([select])

    @staticmethod
    def _row(info: RunInfo) -> list[QStandardItem]:
        cells = [QStandardItem(text) for text in (info.name, info.kind, info.model, info.setting, info.when)]
        for cell in cells[1:]:
            cell.setEditable(False)
        cells[0].setData(info, INFO_ROLE)
        cells[0].setToolTip(f"{info.name}\n{info.path}")
        for cell in cells[1:]:
            cell.setToolTip(cell.text())
        return cells

    def infos(self) -> list[RunInfo]:
        """The runs shown, in the table's order."""
        return [self._info(self.proxy.index(row, 0)) for row in range(self.proxy.rowCount())]

    def selected(self) -> list[RunInfo]:
        rows = sorted(self.table.selectionModel().selectedRows(), key=lambda i: i.row())
        return [self._info(index) for index in rows]

    def select(self, ids: list[str]) -> None:
        self.table.clearSelection()
        mode = self.table.selectionModel()
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if self._info(index).id in ids:
                flags = mode.SelectionFlag.Select | mode.SelectionFlag.Rows
                mode.select(index, flags)

    def _info(self, index: QModelIndex) -> RunInfo:
        info = self.proxy.index(index.row(), 0).data(INFO_ROLE)
        assert isinstance(info, RunInfo)
        return info

    # Actions ------------------------------------------------------------------------------

    def _open_index(self, index: QModelIndex) -> None:
        self.open(self._info(index))

    def open_selected(self) -> None:
        chosen = self.selected()
        if len(chosen) != 1:
            self.error.emit("Select one run to open.")
            return
        self.open(chosen[0])

    def open(self, info: RunInfo) -> None:
        """Redraw the run in the tab of its kind, and bring that tab to the front."""
        viewer = self.viewers.get(info.kind)
        if viewer is None:
            self.error.emit(f"{info.name} is a {info.kind} run; no tab draws those yet.")
            return
        try:
            viewer.show_run(self.library.load(info))
        except HsviewerError as e:
            self.error.emit(str(e))
            return
        self._show_tab(viewer)
        self.opened.emit(f"Showing {info.name} ({info.kind}, saved {info.when})")

    def restore_latest(self) -> None:
        """Redraw the newest whole run of each kind in its tab (at start: the last results come back),
        oldest first: where two kinds share a tab (a sweep, a corpus sweep), the newer one is in front.
        The tabs' inputs stay as the settings left them."""
        found = [
            (run, self.viewers[kind]) for kind in self.viewers if (run := self.library.latest(kind, self.runs.runs))
        ]
        for run, viewer in sorted(found, key=lambda pair: (pair[0].info.created, pair[0].info.id)):
            try:
                viewer.show_run(run, set_inputs=False)
            except HsviewerError as e:
                self.status.setText(str(e))

    def _rename_selected(self) -> None:
        chosen = self.table.selectionModel().selectedRows()
        if len(chosen) != 1:
            self.error.emit("Select one run to rename.")
            return
        self.table.edit(chosen[0])

    def _renamed(self, item: QStandardItem) -> None:
        info = item.data(INFO_ROLE)
        if item.column() != 0 or not isinstance(info, RunInfo) or item.text() == info.name:
            return
        try:
            renamed = self.library.rename(info, item.text())
        except HsviewerError as e:
            self.error.emit(str(e))
            renamed = info
        except OSError as e:
            self.error.emit(f"Could not rename {info.name}: {e.strerror or e}.")
            renamed = info
        self.model.blockSignals(True)
        item.setText(renamed.name)
        item.setData(renamed, INFO_ROLE)
        item.setToolTip(f"{renamed.name}\n{renamed.path}")
        self.model.blockSignals(False)
        self.compare_view.renamed(renamed)

    def delete_selected(self) -> None:
        chosen = self.selected()
        if not chosen:
            self.error.emit("Select the runs to delete.")
            return
        names = "\n".join(info.name for info in chosen[:10]) + ("\n…" if len(chosen) > 10 else "")
        if not self.confirm(f"Delete {len(chosen)} run{'s' * (len(chosen) > 1)} from the library?\n\n{names}"):
            return
        for info in chosen:
            try:
                self.library.delete(info)
            except OSError as e:
                self.error.emit(f"Could not delete {info.name}: {e.strerror or e}.")
        self.refresh()

    def confirm(self, question: str) -> bool:
        answer = QMessageBox.question(self, "Delete runs", question)
        return answer == QMessageBox.StandardButton.Yes

    def compare_selected(self) -> None:
        chosen = self.selected()
        if len(chosen) < 2:
            self.error.emit("Select two runs or more to compare (Ctrl+click or Shift+click).")
            return
        try:
            runs = [self.library.load(info) for info in chosen]
        except HsviewerError as e:
            self.error.emit(str(e))
            return
        self.compare_view.compare_runs(runs)

    # For the window's File menu -----------------------------------------------------------

    def plots(self) -> dict[str, Any]:
        return self.compare_view.plots()

    def exportable(self) -> tuple[Any, list[list[Any]]] | None:
        return self.compare_view.exportable()
