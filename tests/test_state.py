"""The app state (hsviewer.state) without a window: no QApplication, no qtbot.

What a cancel keeps, what is out of date after a model or settings change, what the runs list shows
after saves, busy and idle as jobs start and end, and the menus' table. The sweeps are hand-made
(tests/measure_runs.py), so every number kept is known; their events are the core's own
(SweepResult.events gives the RunStarted and LayerDone a live sweep gives).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from hsviewer.core.analyses.sweep.results import LayerDone, RunStarted
from hsviewer.core.library.store import Library, Saved, SaveFailed
from hsviewer.core.linalg.reduction import Reduction
from hsviewer.state.actions import MENU
from hsviewer.state.app import AppState
from hsviewer.state.inputs import SweepInputs, differences
from hsviewer.state.jobs import JobsInFlight
from hsviewer.state.model import ModelInfo
from hsviewer.state.runs import RunsState
from hsviewer.state.sweep import SweepState
from tests import measure_runs

HIDDEN = 16
TOKENS = 6


class FakeJob:
    """What the state asks of a job: a name, a description, a cancel it records."""

    def __init__(self, name: str = "sweep") -> None:
        self.name = name
        self.description = f"{name} job"
        self.cancels = 0

    def cancel(self) -> None:
        self.cancels += 1


def recorder(signal) -> list:
    """Every emission of a psygnal signal, as a tuple of its arguments."""
    seen: list = []
    signal.connect(lambda *args: seen.append(args))
    return seen


def live_events(controls: tuple[str, ...] = ()) -> list:
    """The events a live sweep of the hand-made result gives, in order."""
    return measure_runs.sweep(controls=controls, tokens=TOKENS).events(HIDDEN)


def test_a_cancel_keeps_the_layers_done_and_their_numbers():
    state = SweepState()
    finished = recorder(state.finished)
    handlers = state.track(FakeJob(), "some text")
    events = live_events()
    assert isinstance(events[0], RunStarted) and all(isinstance(e, LayerDone) for e in events[1:])
    for event in events[:3]:  # the start and two layers of five
        handlers.on_event(event)
    handlers.on_cancelled()
    kept = state.result
    assert kept is not None and kept.cancelled and finished == [(kept,)]
    full = measure_runs.sweep(tokens=TOKENS)  # the same numbers, made again: not the events' objects
    assert [r.layer for r in kept.layers] == [0, 1]
    assert [r.loss for r in kept.layers] == [3.0, 3.1] == [r.loss for r in full.layers[:2]]
    assert [r.components for r in kept.layers] == [2, 3]
    assert kept.clean_loss == 3.0 and kept.n_layers == measure_runs.N_LAYERS


def test_a_cancel_before_the_first_layer_keeps_nothing_and_says_so():
    state = SweepState()
    empty = recorder(state.ended_empty)
    state.track(FakeJob(), "text").on_cancelled()
    assert state.result is None and empty == [("cancelled",)]


def test_a_cancelled_sweep_that_is_not_the_one_drawn_keeps_nothing():
    """Two sweeps queued: the first draws, the second is cancelled before it starts: the first's layers stay."""
    state = SweepState()
    first, second = state.track(FakeJob(), "a"), state.track(FakeJob(), "b")
    for event in live_events():
        first.on_event(event)
    drawn = measure_runs.sweep(tokens=TOKENS)
    first.on_result(drawn)
    empty = recorder(state.ended_empty)
    second.on_cancelled()
    assert state.result is drawn and not drawn.cancelled and empty == [("cancelled",)]


def test_a_cancel_asks_every_sweep_in_flight_and_finished_ones_are_forgotten():
    state = SweepState()
    jobs = [FakeJob(), FakeJob()]
    handlers = [state.track(job, "t") for job in jobs]
    assert state.busy
    state.cancel()
    assert [job.cancels for job in jobs] == [1, 1]
    for h in handlers:
        h.on_finished()
    assert not state.busy
    state.cancel()
    assert [job.cancels for job in jobs] == [1, 1]  # nothing in flight any more


def test_a_failed_sweep_says_so_and_keeps_the_result_shown():
    state = SweepState()
    state.replay(measure_runs.sweep(tokens=TOKENS), HIDDEN)
    shown = state.result
    empty = recorder(state.ended_empty)
    state.track(FakeJob(), "t").on_failed(RuntimeError("boom"))
    assert empty == [("failed",)] and state.result is shown


def test_the_control_runs_are_announced_apart_from_the_plain_run():
    state = SweepState()
    started, controls, layers = recorder(state.started), recorder(state.control_started), recorder(state.layer_done)
    handlers = state.track(FakeJob(), "t")
    for event in live_events(controls=("random",)):
        handlers.on_event(event)
    assert [s.label for (s,) in started] == [""] and [s.label for (s,) in controls] == ["random"]
    assert len(layers) == 2 * measure_runs.N_LAYERS
    assert len(state.collector.runs["random"].layers) == measure_runs.N_LAYERS


def inputs(**changes) -> SweepInputs:
    """What the hand-made sweep was asked for, with some inputs changed."""
    made = SweepInputs(model="hand-made", text="the text", reduction=Reduction(threshold=90.0))
    return replace(made, **changes)


def test_the_sweep_shown_is_out_of_date_after_a_model_or_settings_change():
    state = SweepState()
    assert state.out_of_date(inputs(model="other")) == ()  # nothing shown: nothing out of date
    state.replay(measure_runs.sweep(tokens=TOKENS), HIDDEN, text="the text")
    assert state.out_of_date(inputs()) == ()
    assert state.out_of_date(inputs(model="another-model")) == ("model",)
    assert state.out_of_date(inputs(reduction=Reduction(threshold=95.0))) == ("reduction",)
    assert state.out_of_date(inputs(reduction=Reduction(threshold=90.0, centering="none"))) == ("reduction",)
    assert state.out_of_date(inputs(grid=(Reduction(threshold=80.0),))) == ("grid",)
    assert state.out_of_date(inputs(controls=("random",))) == ("controls",)
    assert state.out_of_date(inputs(text="another text", model="m")) == ("model", "text")
    assert state.out_of_date(inputs(model=None, text=None)) == ()  # no model loaded, text unknown: not compared


def test_the_controls_and_grid_a_sweep_was_made_with_come_from_its_events():
    state = SweepState()
    grid = [Reduction(threshold=80.0), Reduction(threshold=99.0)]
    result = replace(measure_runs.sweep(controls=("random", "shuffled"), tokens=TOKENS), grid=grid)
    state.replay(result, HIDDEN, text="t")
    asked = inputs(text="t", grid=tuple(grid), controls=("shuffled", "random"))  # their order does not matter
    assert state.out_of_date(asked) == ()
    assert differences(state.made_with, replace(asked, grid=tuple(grid[:1]))) == ("grid",)


def test_busy_and_idle_as_jobs_start_and_end():
    jobs = JobsInFlight()
    changes = recorder(jobs.changed)
    a, b = FakeJob("a"), FakeJob("b")
    assert not jobs.busy and not jobs.cancel_all()
    jobs.add(a)
    jobs.add(b)
    assert jobs.busy and not jobs.only(a)
    jobs.remove(a)
    assert jobs.only(b) and jobs.busy
    assert jobs.cancel_all() and b.cancels == 1 and a.cancels == 0
    jobs.remove(b)
    assert not jobs.busy and changes == [(True,), (True,), (True,), (False,)]


def test_the_runs_list_shows_a_saved_run_selected_and_says_a_failed_save(tmp_path):
    runs = RunsState()
    runs.library = Library(tmp_path)
    listed, failed = recorder(runs.listed), recorder(runs.save_failed)
    runs.refresh()
    assert runs.runs == [] and listed[-1][1] is None
    first = runs.library.save("sweep", measure_runs.sweep(tokens=TOKENS), {})
    runs.saw(Saved(info=first))
    second = runs.library.save("corpus", measure_runs.corpus(), {})
    runs.saw(Saved(info=second))
    assert sorted((info.id, info.kind) for info in runs.runs) == sorted([(first.id, "sweep"), (second.id, "corpus")])
    assert listed[-1][1] == second.id and len(listed) == 3
    runs.saw(SaveFailed(message="disk full"))
    runs.saw(object())  # any other event: nothing
    assert failed == [("disk full",)] and len(listed) == 3


def test_the_runs_list_needs_its_library():
    with pytest.raises(RuntimeError, match="library"):
        RunsState().refresh()


def info(name: str = "tiny") -> ModelInfo:
    return ModelInfo(source=f"/models/{name}", name=name, n_layers=4, hidden_size=16, device="cpu", licence="MIT")


def test_a_model_change_is_signalled_and_kept():
    state = AppState()
    seen = recorder(state.model_changed)
    state.set_model(info("a"))
    state.set_model(info("b"))
    assert state.model == info("b") and seen == [(info("a"),), (info("b"),)]
    assert info().describe() == "tiny · cpu"


def test_the_menus_table_names_window_commands_with_distinct_shortcuts():
    from hsviewer.gui.main_window import MainWindow  # the class only: no QApplication, no window

    assert all(callable(getattr(MainWindow, entry.command, None)) for entry in MENU)
    shortcuts = [entry.shortcut for entry in MENU if entry.shortcut]
    assert len(shortcuts) == len(set(shortcuts))
    texts = {entry.text.replace("&", ""): entry for entry in MENU}
    assert texts["Quit"].shortcut == "Ctrl+Q" and texts["Export data…"].menu == "&File"
    state = AppState()
    before = {text for text, entry in texts.items() if entry.enabled_when(state)}
    state.set_ready()
    after = {text for text, entry in texts.items() if entry.enabled_when(state)}
    assert before == {"Quit", "Guide", "About hsviewer"} and after == set(texts)


def test_the_state_imports_neither_qt_nor_numpy():
    """Qt-free (the import contract checks the imports; this checks what loading it loads), and light:
    the bare window builds it before numpy is imported."""
    code = (
        "import sys, hsviewer.state.app, hsviewer.state.actions;"
        "print(sorted({'PySide6', 'pyqtgraph', 'numpy', 'torch'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_cancel_after_another_sweep_was_redrawn_keeps_the_redrawn_one():
    """A sweep runs two layers, then a corpus text's sweep is redrawn over it (Corpus page, Open): the
    cancel that follows must not put the half sweep back over the one shown."""
    state = SweepState()
    handlers = state.track(FakeJob(), "t")
    for event in live_events()[:3]:
        handlers.on_event(event)
    shown = measure_runs.sweep(shift=1.0, tokens=TOKENS)
    state.replay(shown, HIDDEN)
    empty = recorder(state.ended_empty)
    handlers.on_cancelled()
    assert state.result is shown and not shown.cancelled and empty == [("cancelled",)]
