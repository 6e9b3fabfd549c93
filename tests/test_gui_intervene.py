"""The Hidden state tab's "Remove massive activations": the run on the worker, its outcome, the
saved run in the Runs tab, and Cancel."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import Qt

from hsviewer.core import intervene
from hsviewer.core.library.store import Library
from tests.support import HOLD_S, TIMEOUT_MS, wait_job


def test_the_button_runs_at_the_tabs_layer_and_shows_the_outcome(qtbot, loaded, tiny_model):
    tab = loaded.hidden_tab
    box = tab.intervention
    tab.layer.setValue(1)
    box.ratio.setValue(3.0)
    box.value.setCurrentIndex(box.value.findData("zero"))
    with wait_job(qtbot, loaded, "intervene"):
        box.button.click()
    expected = intervene(tiny_model, tab.text.toPlainText(), 1, ratio=3.0, value="zero").layers[0]
    shown = box.outcome.text()
    assert expected.entries > 0
    assert f"Layer 1: {expected.entries} entries set to zero" in shown
    assert f"→ {expected.loss:.4f} ({expected.loss_change:+.4f}); KL {expected.kl_divergence:.4g} nats" in shown
    assert tab.result is None  # the reduction's panels are left alone
    (info,) = loaded.runs_tab.infos()  # listed as soon as it was saved
    assert info.kind == "intervene" and info.setting == "zero, ratio 3"
    box.outcome.setText("")
    loaded.runs_tab.open(info)
    assert loaded.tabs.currentWidget() is tab and info.name in box.outcome.text()
    assert f"{expected.entries} entries set to zero" in box.outcome.text() and not loaded.errors


def hold_intervention(window) -> threading.Event:
    """Block the worker at the intervention's first event until it is cancelled; set once it is held."""
    held = threading.Event()

    def submitted(job):
        def hold(event):
            if not held.is_set():
                held.set()
                deadline = time.monotonic() + HOLD_S
                while not job.abort_requested and time.monotonic() < deadline:
                    time.sleep(0.005)

        if job.name == "intervene":
            job.yielded.connect(hold, Qt.ConnectionType.DirectConnection)

    window.job_submitted.connect(submitted)
    return held


def test_cancel_stops_it_and_the_window_keeps_working(qtbot, loaded):
    held = hold_intervention(loaded)
    box = loaded.hidden_tab.intervention
    with wait_job(qtbot, loaded, "intervene"):
        box.button.click()
        qtbot.waitUntil(held.is_set, timeout=TIMEOUT_MS)
        assert loaded.cancel_button.isEnabled()
        loaded.cancel_button.click()
    assert box.outcome.text() == "Cancelled: no result."
    assert "cancelled" in loaded.status.text() and not Library().list().runs
    with wait_job(qtbot, loaded, "hidden"):
        loaded.hidden_tab.run()
    assert loaded.hidden_tab.result is not None and not loaded.errors
    with wait_job(qtbot, loaded, "intervene"):
        box.button.click()
    assert box.outcome.text().startswith(f"Layer {loaded.hidden_tab.layer.value()}:")
