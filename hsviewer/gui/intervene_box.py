"""The Hidden state tab's "Remove massive activations": Sun et al. 2024's intervention at the tab's
layer, run on the model's worker, its outcome in a few lines under the button."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QPushButton, QWidget

from hsviewer.core.analyses.intervene.spec import InterveneSpec
from hsviewer.core.choices import VALUES
from hsviewer.gui.jobs import intervene_job
from hsviewer.state.jobs import JobHandlers

if TYPE_CHECKING:
    from hsviewer.gui.job_wiring import Submit

VALUE_LABELS = {"mean": "Mean of the other tokens", "zero": "Zero"}
VALUE_WORDS = {"mean": "the mean of the other tokens", "zero": "zero"}  # as the outcome line says it


class InterventionBox(QWidget):
    """Ratio, value and the button; the last intervention's outcome (or a saved one's) below."""

    def __init__(
        self,
        submit: Submit,
        text: Callable[[], str],
        layer: Callable[[], int],
        parent: QWidget | None = None,
    ) -> None:
        """text and layer: the tab's, read when the button is pressed."""
        super().__init__(parent)
        self._submit, self._text, self._layer = submit, text, layer
        self.ratio = QDoubleSpinBox()
        self.ratio.setRange(1.0, 1e9)
        self.ratio.setDecimals(1)
        self.ratio.setValue(100.0)
        self.ratio.setSuffix(" × median")
        self.ratio.setToolTip("An entry is massive when its |value| exceeds this many times the median |value|")
        self.value = QComboBox()
        for key in VALUES:
            self.value.addItem(VALUE_LABELS[key], key)
        self.value.setToolTip("What each massive entry is set to: its column's mean over the other tokens, or 0")
        self.button = QPushButton("Remove massive activations")
        self.button.setToolTip(
            "At the chosen layer, set the massive activations (Sun et al. 2024) to the chosen value, run the rest "
            "of the model and measure loss and KL against the clean run"
        )
        self.button.clicked.connect(self.run)
        self.outcome = QLabel("")
        self.outcome.setWordWrap(True)
        self.outcome.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow(QLabel("<b>Massive activations</b>"))
        form.addRow("Ratio", self.ratio)
        form.addRow("Set to", self.value)
        form.addRow(self.button)
        form.addRow(self.outcome)

    def run(self) -> None:
        """Queue the intervention at the tab's layer, on the tab's text."""
        layer = self._layer()
        self.outcome.setText(f"Removing massive activations at layer {layer}…")
        spec = InterveneSpec(layers=layer, ratio=self.ratio.value(), value=self.value.currentData())
        job = intervene_job(self._text(), spec)
        handlers = JobHandlers(
            on_result=functools.partial(self.show_result, ""),
            on_failed=functools.partial(self._ended, "Failed: no result."),
            on_cancelled=functools.partial(self._ended, "Cancelled: no result."),
        )
        self._submit(job, handlers)

    def _ended(self, note: str, *_: Any) -> None:
        self.outcome.setText(note)

    def show_result(self, header: str, result: Any) -> None:
        """Say what the intervention did (an InterventionResult of one layer or more)."""
        lines = [header] if header else []
        lines += [outcome_line(result, layer) for layer in result.layers]
        if result.cancelled:
            lines.append("<i>Cancelled: the layers above are all that ran.</i>")
        self.outcome.setText("<br>".join(lines))

    def show_run(self, run: Any) -> None:
        """A saved intervention from the Runs tab: its outcome, under its name."""
        self.show_result(f"<b>{run.info.name}</b> (saved {run.info.when})", run.result())


def outcome_line(result: Any, r: Any) -> str:
    """One layer's outcome: entries set, loss clean -> intervened, KL; or that the ratio found nothing."""
    largest = "∞" if r.largest_ratio is None else f"{r.largest_ratio:,.0f}"
    if r.entries == 0:
        return (
            f"Layer {r.layer}: no entry exceeds {result.ratio:g}× the median (largest {largest}×): "
            f"nothing changed; loss {result.clean_loss:.4f}"
        )
    where = ", ".join(f"({t}, {d})" for t, d in r.positions[:5]) + ("…" if r.entries > 5 else "")
    return (
        f"Layer {r.layer}: {r.entries} entr{'y' if r.entries == 1 else 'ies'} set to {VALUE_WORDS[result.value]} "
        f"(largest {largest}× the median; token, dimension: {where})<br>"
        f"Loss: clean {result.clean_loss:.4f} → {r.loss:.4f} ({r.loss_change:+.4f}); KL {r.kl_divergence:.4g} nats"
    )
