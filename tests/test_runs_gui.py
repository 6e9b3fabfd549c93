"""The Runs tab: finished runs are listed as they are saved, reopen without computing, can be renamed,
deleted and compared, and the last ones come back when the app starts again."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from hsviewer.core.analyses.sweep.run import layer_sweep
from hsviewer.core.library.provenance import provenance
from hsviewer.core.library.store import Library
from hsviewer.core.linalg.reduction import Reduction
from tests.support import TEXT, wait_job


def sweep_panels(tab):
    """What the sweep tab shows: every curve's points and the two heatmaps."""
    curves = {
        (label, name): tuple(np.asarray(a).tolist() for a in curve.getData())
        for label, run in tab.curves.items()
        for name, curve in run.items()
        if curve is not None
    }
    for name, curve in (("hidden", tab.hidden_curve), ("logits", tab.logit_curve)):
        curves[name] = tuple(np.asarray(a).tolist() for a in curve.getData())
    return curves, tab.tokens_map.image.image.copy(), tab.grid_map.image.image.copy(), tab.dim_points.getData()


def run_sweep(qtbot, window, threshold):
    window.sweep_tab.form.threshold.setValue(threshold)
    with wait_job(qtbot, window, "sweep"):
        window.sweep_tab.run()
    qtbot.waitUntil(lambda: not window.jobs)  # finished too: a saved sweep opens only when none runs
    return window.sweep_tab.result


def test_a_finished_sweep_is_listed_and_reopens_with_identical_numbers(qtbot, loaded):
    tab, runs = loaded.sweep_tab, loaded.runs_tab
    tab.grid_field.setText("80,99")
    first = run_sweep(qtbot, loaded, 90.0)
    shown = sweep_panels(tab)
    assert [(r.kind, r.setting) for r in runs.infos()] == [("sweep", "90%, grid of 2")]
    assert [r.id for r in runs.selected()] == [runs.infos()[0].id]  # the new run is selected
    run_sweep(qtbot, loaded, 50.0)  # the panels now show another sweep
    assert tab.result.reduction.threshold == 50.0
    old = next(r for r in runs.infos() if r.setting == "90%, grid of 2")
    submitted = []
    loaded.job_submitted.connect(submitted.append)
    loaded.tabs.setCurrentWidget(runs)
    runs.open(old)
    assert submitted == []  # redrawn, not computed
    assert loaded.tabs.currentWidget() is tab
    assert tab.result == first
    again = sweep_panels(tab)
    assert again[0] == shown[0]
    np.testing.assert_array_equal(again[1], shown[1])
    np.testing.assert_array_equal(again[2], shown[2])
    for a, b in zip(again[3], shown[3], strict=True):
        np.testing.assert_array_equal(a, b)
    assert old.name in tab.summary.text()


def test_the_last_results_come_back_after_a_restart(qtbot, loaded, make_window, settings):
    loaded.hidden_tab.layer.setValue(1)
    with wait_job(qtbot, loaded, "hidden"):
        loaded.hidden_tab.run()
    reduced = loaded.hidden_tab.result
    swept = run_sweep(qtbot, loaded, 90.0)
    loaded.close()
    again = make_window(settings)  # the same settings and library, no model loaded
    assert again.model_info is None
    shown = again.hidden_tab.result
    assert shown.to_dict() == reduced.to_dict()
    np.testing.assert_array_equal(again.hidden_tab.original.image.image, loaded.hidden_tab.original.image.image)
    np.testing.assert_array_equal(shown.vh, reduced.vh)
    assert again.sweep_tab.result == swept
    assert len(again.runs_tab.infos()) == 2


def test_rename_in_place_and_delete_after_asking(qtbot, window, sweeps_saved, monkeypatch):
    runs = window.runs_tab
    runs.refresh()
    first = runs.infos()[0]
    item = runs.model.item(
        next(i for i in range(runs.model.rowCount()) if runs.model.item(i).data(runs_role()).id == first.id)
    )
    item.setText("my favourite")  # what editing the cell does
    assert Library().find("my favourite").id == first.id
    item.setText("   ")
    assert window.errors[-1] == "A run's name cannot be empty."
    assert item.text() == "my favourite" and Library().find(first.id).name == "my favourite"
    runs.filter.setText("favourite")
    assert [r.id for r in runs.infos()] == [first.id]
    runs.filter.setText("")
    runs.select([first.id])
    monkeypatch.setattr(runs, "confirm", lambda question: False)
    runs.delete_selected()
    assert len(Library().list().runs) == 2
    asked = []
    monkeypatch.setattr(runs, "confirm", lambda question: asked.append(question) or True)
    runs.delete_selected()
    assert "my favourite" in asked[0]
    assert [r.id for r in Library().list().runs] == [r.id for r in runs.infos()]
    assert first.id not in [r.id for r in runs.infos()] and len(runs.infos()) == 1
    assert not first.path.exists()


def runs_role():
    from hsviewer.gui.runs_panel import INFO_ROLE

    return INFO_ROLE


@pytest.fixture
def sweeps_saved(tiny_handle):
    """Two sweeps of different depths (2 and 4 blocks) saved in the test's library."""
    library = Library()
    saved = []
    for arch, name in (("gpt_neo", "two blocks"), ("gpt_neox", "four blocks")):
        handle = tiny_handle(arch)
        result = layer_sweep(handle, TEXT, Reduction(threshold=90.0))
        made = provenance(handle, settings={}, texts=[TEXT])
        saved.append((library.save("sweep", result, made, name=name), result))
    return saved


def test_compare_two_selected_runs_and_export_them(qtbot, window, sweeps_saved, tmp_path):
    runs = window.runs_tab
    runs.refresh()
    runs.compare_selected()
    assert window.errors[-1].startswith("Select two runs or more")
    runs.select([info.id for info, _ in sweeps_saved])
    runs.compare_selected()
    view = runs.compare_view
    curves = view.comparison.curves
    assert sorted(c.n_layers for c in curves) == [2, 4]
    plotted = [item for item in view.curves.listDataItems() if item.name()]
    assert sorted(item.name() for item in plotted) == ["four blocks (4 blocks)", "two blocks (2 blocks)"]
    four = next(item for item in plotted if item.name().startswith("four"))
    x, y = four.getData()
    np.testing.assert_allclose(x, [0, 1 / 3, 2 / 3, 1])
    result = dict((info.name, r) for info, r in sweeps_saved)["four blocks"]
    np.testing.assert_allclose(y, [r.loss - result.clean_loss for r in result.layers])
    view.set_metric("kl")
    four = next(i for i in view.curves.listDataItems() if (i.name() or "").startswith("four"))
    np.testing.assert_allclose(four.getData()[1], [r.kl_divergence for r in result.layers])
    view.export_csv(str(tmp_path / "c.csv"))
    rows = list(csv.reader((tmp_path / "c.csv").open()))
    assert rows[0][6] == "kl" and len(rows) == 1 + 2 + 4
    view.export_figure(str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    window.tabs.setCurrentWidget(runs)
    window.export_data(str(tmp_path / "c.json"))  # File > Export data on the Runs tab
    assert json.loads((tmp_path / "c.json").read_text())["metric"] == "kl"


def test_a_damaged_or_newer_run_is_skipped_listed_and_one_message_when_opened(qtbot, window, sweeps_saved):
    info = sweeps_saved[0][0]
    data = json.loads(info.path.read_text())
    (info.path.parent / "newer.json").write_text(json.dumps({**data, "id": "newer", "version": 2}))
    (info.path.parent / "broken.json").write_text("{")
    runs = window.runs_tab
    runs.refresh()
    assert len(runs.infos()) == 2
    assert "skipped 2 unreadable" in runs.status.text() and "newer hsviewer (format 2)" in runs.status.text()
    npz_less = Library().save("sweep", sweeps_saved[1][1], {}, name="gone")
    runs.refresh()
    npz_less.path.write_text(json.dumps({**json.loads(npz_less.path.read_text()), "result": {"model": "x"}}))
    runs.open(next(r for r in runs.infos() if r.name == "gone"))
    assert len(window.errors) == 1 and "is damaged: its result has no 'tokens'" in window.errors[0]
    assert (info.path.parent / "newer.json").exists() and (info.path.parent / "broken.json").exists()
