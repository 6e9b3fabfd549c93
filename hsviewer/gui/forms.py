"""Input widgets shared by the tabs: how to reduce, and which model to load."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from hsviewer.core.linalg.reduction import Reduction
from hsviewer.gui.settings import Settings

LONG_MODEL_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"  # a hub id the model box shows whole
CENTERINGS = {"double": "Double (rows and columns)", "column": "Columns (PCA)", "none": "None"}


class ReductionForm(QWidget):
    """Threshold or fixed k, and the centering: everything a Reduction needs."""

    def __init__(self, threshold: float = 95.0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mode = QComboBox()
        self.mode.addItems(["Variance threshold", "Fixed components"])
        self.mode.setToolTip("Choose k from a percent of variance to keep, or fix k yourself")
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.01, 100.0)
        self.threshold.setDecimals(2)
        self.threshold.setSuffix(" %")
        self.threshold.setValue(threshold)
        self.threshold.setToolTip("Keep the fewest components whose squared singular values add up to this percent")
        self.components = QSpinBox()
        self.components.setRange(1, 100_000)
        self.components.setValue(10)
        self.components.setToolTip("k, the number of components kept (at most the matrix's rank)")
        self.centering = QComboBox()
        for key, label in CENTERINGS.items():
            self.centering.addItem(label, key)
        self.centering.setToolTip(
            "What is removed before the SVD and added back after: the row and column means (double), the column "
            "means (PCA) or nothing. Without centring the first component mostly carries the mean."
        )
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Reduce by", self.mode)
        form.addRow("Threshold", self.threshold)
        form.addRow("Components k", self.components)
        form.addRow("Centering", self.centering)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self._mode_changed()

    def _mode_changed(self) -> None:
        fixed = self.mode.currentIndex() == 1
        self.threshold.setEnabled(not fixed)
        self.components.setEnabled(fixed)

    def reduction(self) -> Reduction:
        """The chosen Reduction; HsviewerError when the values make no sense."""
        centering = self.centering.currentData()
        if self.mode.currentIndex() == 1:
            return Reduction(threshold=None, fixed_components=self.components.value(), centering=centering)
        return Reduction(threshold=self.threshold.value(), centering=centering)

    def set_reduction(self, reduction: Reduction) -> None:
        """Show this reduction's threshold or k, and its centering (a saved run's, reopened)."""
        fixed = reduction.fixed_components is not None
        self.mode.setCurrentIndex(1 if fixed else 0)
        if fixed:
            self.components.setValue(int(reduction.fixed_components or 1))
        elif reduction.threshold is not None:
            self.threshold.setValue(reduction.threshold)
        self.centering.setCurrentIndex(max(self.centering.findData(reduction.centering), 0))

    def save(self, settings: Settings, prefix: str) -> None:
        settings.set(f"{prefix}/fixed_k", self.mode.currentIndex() == 1)
        settings.set(f"{prefix}/threshold", self.threshold.value())
        settings.set(f"{prefix}/components", self.components.value())
        settings.set(f"{prefix}/centering", self.centering.currentData())

    def restore(self, settings: Settings, prefix: str) -> None:
        self.mode.setCurrentIndex(1 if settings.get(f"{prefix}/fixed_k", False, bool) else 0)
        self.threshold.setValue(settings.get(f"{prefix}/threshold", self.threshold.value(), float))
        self.components.setValue(settings.get(f"{prefix}/components", self.components.value(), int))
        index = self.centering.findData(settings.get(f"{prefix}/centering", "double", str))
        self.centering.setCurrentIndex(max(index, 0))


class ModelPicker(QWidget):
    """An editable list of recent models with buttons to browse for a folder or a .gguf file."""

    load_requested = Signal(str)

    def __init__(self, recent: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setEditable(True)
        self.combo.setToolTip("'default', a Hugging Face model folder, a .gguf file or a hub id in the local cache")
        self.set_recent(recent)
        folder = QPushButton("Folder…")
        folder.setToolTip("Choose a Hugging Face model folder")
        folder.clicked.connect(self._browse_folder)
        gguf = QPushButton(".gguf…")
        gguf.setToolTip("Choose a GGUF model file")
        gguf.clicked.connect(self._browse_gguf)
        self.load = QPushButton("Load")
        self.load.setToolTip("Load the model named on the left")
        self.load.clicked.connect(self._load_clicked)
        self.combo.setMinimumContentsLength(len(LONG_MODEL_NAME))
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        buttons = QHBoxLayout()
        buttons.addWidget(folder)
        buttons.addWidget(gguf)
        buttons.addWidget(self.load)
        column = QVBoxLayout(self)  # the buttons under the box, which gets the whole width for a name
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.combo)
        column.addLayout(buttons)

    def set_recent(self, recent: list[str]) -> None:
        current = self.combo.currentText()
        self.combo.clear()
        self.combo.addItems(list(dict.fromkeys([*recent, "default"])))
        if current:
            self.combo.setCurrentText(current)

    def _load_clicked(self) -> None:
        self.load_requested.emit(self.source())

    def source(self) -> str:
        return self.combo.currentText().strip()

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a Hugging Face model folder")
        if path:
            self.combo.setCurrentText(path)

    def _browse_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model file", "", "GGUF models (*.gguf)")
        if path:
            self.combo.setCurrentText(path)


def inputs_beside_plots(owner: QWidget, inputs: QWidget, plots: QWidget, inputs_width: int) -> None:
    """Lay out a tab: its inputs on the left (scrolling down in a short window, so that the window, status
    bar included, still fits the screen), its plots taking the rest, with a movable divider."""
    side = QScrollArea()
    side.setWidget(inputs)
    side.setWidgetResizable(True)
    side.setFrameShape(QFrame.Shape.NoFrame)
    side.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    bar = side.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
    side.setMinimumWidth(inputs.minimumSizeHint().width() + bar)  # never cut sideways
    splitter = QSplitter()
    splitter.addWidget(side)
    splitter.addWidget(plots)
    splitter.setStretchFactor(1, 1)
    splitter.setSizes([inputs_width, 1600 - inputs_width])
    QVBoxLayout(owner).addWidget(splitter)
