"""How to load a model: precision, device, memory budget, streaming and CPU threads, as the CLI's
--dtype, --device, --memory-budget, --stream and --threads, remembered in the settings."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QSpinBox, QWidget

from hsviewer.core.errors import HsviewerError
from hsviewer.core.model.load_spec import LoadSpec
from hsviewer.core.model.memory import DTYPES, STREAMS, MemoryPlan, RefusalWords, parse_size, refusal
from hsviewer.gui.settings import Settings

AUTO = "auto"
MAX_THREADS = 256


# A refusal in the app names the fields of File > Choose model, not the CLI's flags.
FIELD_WORDS = RefusalWords(
    half="Precision bfloat16 (half the weights)",
    gpu="a GPU under Device, where there is one",
    budget="A Memory budget, when set, counts instead of what is free: raise it, or leave it empty.",
)


def field_refusal(plan: MemoryPlan) -> str:
    """Why the plan is refused, in the words of the Choose model dialog."""
    return refusal(plan, FIELD_WORDS)


@dataclass(frozen=True, kw_only=True)
class LoadOptions:
    """The load choices as the user gave them: 'auto' leaves the choice to the memory plan."""

    dtype: str = AUTO
    device: str = AUTO
    budget: str = ""  # as typed: "" plans for what is free
    threads: int = 0  # CPU threads to compute with; 0: torch's own choice
    stream: str = AUTO  # auto: stream the weights from disk when they do not fit; always; never

    def device_arg(self) -> str | None:
        return None if self.device == AUTO else self.device

    def budget_bytes(self) -> int | None:
        """The budget in bytes, None for what is free; HsviewerError for text that is no size."""
        return parse_size(self.budget) if self.budget.strip() else None

    def spec(self, source: str) -> LoadSpec:
        """The LoadSpec of these choices for `source`; HsviewerError for a budget that is no size, or a choice
        the spec refuses."""
        return LoadSpec(
            source=source,
            dtype=self.dtype,
            device=self.device_arg(),
            memory_budget=self.budget_bytes(),
            stream=self.stream,
            threads=self.threads,
        )

    @classmethod
    def restore(cls, settings: Settings) -> LoadOptions:
        dtype = settings.get("model/dtype", AUTO, str)
        stream = settings.get("model/stream", AUTO, str)
        return cls(
            stream=stream if stream in STREAMS else AUTO,
            dtype=dtype if dtype in DTYPES else AUTO,
            device=settings.get("model/device", AUTO, str) or AUTO,
            budget=settings.get("model/memory_budget", "", str),
            threads=min(max(settings.get("model/threads", 0, int), 0), MAX_THREADS),
        )

    def save(self, settings: Settings) -> None:
        settings.set("model/dtype", self.dtype)
        settings.set("model/device", self.device)
        settings.set("model/memory_budget", self.budget.strip())
        settings.set("model/threads", self.threads)
        settings.set("model/stream", self.stream)


class LoadOptionsRow(QWidget):
    """Precision, device, memory budget and threads in one row; `changed` on every edit."""

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
        self.threads = QSpinBox()
        self.threads.setRange(0, MAX_THREADS)
        self.threads.setSpecialValueText(AUTO)  # 0
        self.threads.setValue(options.threads)
        self.threads.setToolTip(
            "CPU threads to compute with, from the next load (auto: torch's own, one per core). "
            "On cores that other work shares, fewer can be several times faster."
        )
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
        for label, widget in (*widgets, ("Stream", self.stream), ("Threads", self.threads)):
            layout.addWidget(QLabel(f"{label}:"))
            layout.addWidget(widget)
            layout.addSpacing(12)
        layout.addStretch(1)
        self.dtype.currentTextChanged.connect(self.changed)
        self.device.currentTextChanged.connect(self._device_chosen)
        self.budget.textChanged.connect(self.changed)
        self.threads.valueChanged.connect(self.changed)
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
            threads=self.threads.value(),
            stream=self.stream.currentText(),
        )

    def budget_problem(self) -> str:
        """Why the budget text is no memory size, or ''."""
        try:
            self.options().budget_bytes()
        except HsviewerError as e:
            return str(e)
        return ""
