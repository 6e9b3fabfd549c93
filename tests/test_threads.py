"""CPU threads: --threads for the analysis commands and the model dialog's setting (remembered),
set with torch.set_num_threads before the work, on the thread that does it; by default torch's own."""

from __future__ import annotations

import pytest
import torch

import hsviewer.core.analyses.sweep.run
from hsviewer.cli import main
from hsviewer.core.errors import HsviewerError
from hsviewer.core.linalg.threads import check_threads, use_threads
from tests.support import TIMEOUT_MS, wait_job

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def threads_put_back():
    """The tests here change this thread's count; the next test starts with the one before."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def threads_seen(monkeypatch):
    """The thread count each sweep started with, recorded on the thread that ran it."""
    seen = []
    sweep = hsviewer.core.analyses.sweep.run.iter_sweep

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        yield from sweep(*args, **kwargs)

    monkeypatch.setattr(hsviewer.core.analyses.sweep.run, "iter_sweep", recording)
    return seen


def test_sweep_runs_with_the_threads_asked_for(tiny_model_dir, text, tmp_path, threads_seen):
    args = ["sweep", "--model", str(tiny_model_dir), "--text", text, "--out", str(tmp_path / "s.json"), "--no-save"]
    assert main([*args, "--threads", "3"]) == 0
    assert threads_seen == [3]
    assert main(args) == 0  # without --threads: torch's own, as before the count was set
    assert threads_seen[1] == torch.get_num_threads() != 3


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_threads_that_are_no_count_exit_2_with_one_line(bad, tmp_path, capsys):
    assert main(["reduce", "--layer", "0", "--threads", bad, "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "threads are a whole number of at least 1" in err
    assert not (tmp_path / "r.json").exists()


def test_the_core_refuses_a_count_that_is_none():
    assert check_threads(2) == 2
    for bad in (0, -3, 1.5, "2", True):
        with pytest.raises(HsviewerError, match="Threads must be a whole number"):
            use_threads(bad)


def test_the_dialogs_threads_are_remembered_and_used_by_the_analyses(
    qtbot, make_window, settings, tiny_model_dir, threads_seen
):
    from tests.test_model_options import in_modal_dialog

    window = make_window(settings)

    def choose(dialog):
        assert dialog.load_options.threads.text() == "auto"  # by default torch's own
        dialog.picker.combo.setCurrentText(str(tiny_model_dir))
        dialog.load_options.threads.setValue(3)
        dialog.accept()

    in_modal_dialog(choose)
    with qtbot.waitSignal(window.model_loaded, timeout=TIMEOUT_MS):
        window.choose_model_dialog()
    assert settings.get("model/threads", 0, int) == 3

    gui_threads = torch.get_num_threads()
    with wait_job(qtbot, window, "sweep"):
        window.sweep_tab.run()
    assert threads_seen == [3]  # on the model's worker thread
    assert window.sweep_tab.result is not None
    assert torch.get_num_threads() == gui_threads  # the GUI thread's count is left alone

    second = make_window(settings)  # the same settings store, as after a restart
    looked = {}

    def look(dialog):
        looked["threads"] = dialog.load_options.threads.value()
        dialog.reject()

    in_modal_dialog(look)
    second.choose_model_dialog()
    assert looked == {"threads": 3}
