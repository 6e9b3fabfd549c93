"""How to load a model: precision, device, memory budget and streaming, as the CLI's --dtype, --device,
--memory-budget and --stream, remembered in the settings."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QWidget

from hsviewer.core.errors import HsviewerError
from hsviewer.core.memory import DTYPES, STREAMS, parse_size
from hsviewer.gui.settings import Settings

AUTO = "auto"


@dataclass(frozen=True, kw_only=True)
class LoadOptions:
    """The load choices as the user gave them: 'auto' leaves the choice to the memory plan."""

    dtype: str = AUTO
    device: str = AUTO
    budget: str = ""  # as typed: "" plans for what is free
    stream: str = AUTO  # auto: stream the weights from disk when they do not fit; always; never

    def device_arg(self) -> str | None:
        return None if self.device == AUTO else self.device

    def budget_bytes(self) -> int | None:
        """The budget in bytes, None for what is free; HsviewerError for text that is no size."""
        return parse_size(self.budget) if self.budget.strip() else None

    @classmethod
    def restore(cls, settings: Settings) -> LoadOptions:
        dtype = settings.get("model/dtype", AUTO, str)
        stream = settings.get("model/stream", AUTO, str)
        return cls(
            stream=stream if stream in STREAMS else AUTO,
            dtype=dtype if dtype in DTYPES else AUTO,
            device=settings.get("model/device", AUTO, str) or AUTO,
            budget=settings.get("model/memory_budget", "", str),
        )

    def save(self, settings: Settings) -> None:
        settings.set("model/dtype", self.dtype)
        settings.set("model/device", self.device)
        settings.set("model/memory_budget", self.budget.strip())
        settings.set("model/stream", self.stream)


class LoadOptionsRow(QWidget):
    """Precision, device and memory budget in one row; `changed` on every edit."""

    changed = Signal()

    def __init__(self, options: LoadOptions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.dtype = QComboBox()
        self.dtype.addItems(list(DTYPES))
        self.dtype.setCurrentText(options.dtype)
        self.dtype.setToolTip("auto: float32 when the memory plan fits, else bfloat16 (half the memory)")
        self.device = QComboBox()
        self.device.setToolTip("auto: the GPU when there is one, else the CPU")
        self._wanted_device = options.device
        self.set_devices(["cpu"] if options.device in (AUTO, "cpu") else ["cpu", options.device])
        self.budget = QLineEdit(options.budget)
        self.budget.setPlaceholderText("what is free")
        self.budget.setClearButtonEnabled(True)
        self.budget.setToolTip(
            "Plan for this much memory (6GB, 6 GiB, 512MB) instead of what is free; empty: what is free"
        )
        self.budget.setMaximumWidth(160)
        self.stream = QComboBox()
        self.stream.addItems(list(STREAMS))
        self.stream.setCurrentText(options.stream)
        self.stream.setToolTip(
            "auto: read the weights from disk a block at a time when they do not fit in memory (slower); "
            "always: stream even when they fit; never: refuse a model that does not fit"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        widgets = (("Precision", self.dtype), ("Device", self.device), ("Memory budget", self.budget))
        for label, widget in (*widgets, ("Stream", self.stream)):
            layout.addWidget(QLabel(f"{label}:"))
            layout.addWidget(widget)
            layout.addSpacing(12)
        layout.addStretch(1)
        self.dtype.currentTextChanged.connect(self.changed)
        self.device.currentTextChanged.connect(self._device_chosen)
        self.budget.textChanged.connect(self.changed)
        self.stream.currentTextChanged.connect(self.changed)

    def set_devices(self, devices: list[str]) -> None:
        """Offer auto and these devices; the remembered one stays chosen when it is among them."""
        self.device.blockSignals(True)
        self.device.clear()
        self.device.addItems([AUTO, *devices])
        self.device.setCurrentText(self._wanted_device if self._wanted_device in devices else AUTO)
        self.device.blockSignals(False)
        self.changed.emit()

    def _device_chosen(self, device: str) -> None:
        self._wanted_device = device
        self.changed.emit()

    def options(self) -> LoadOptions:
        return LoadOptions(
            dtype=self.dtype.currentText(),
            device=self.device.currentText(),
            budget=self.budget.text(),
            stream=self.stream.currentText(),
        )

    def budget_problem(self) -> str:
        """Why the budget text is no memory size, or ''."""
        try:
            self.options().budget_bytes()
        except HsviewerError as e:
            return str(e)
        return ""
