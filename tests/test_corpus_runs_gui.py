"""Saved runs in the window: corpus sweeps listed, reopened on the Corpus page and restored at start;
opening a run sets the inputs it was made with; a restored reduction is out of date only when the
inputs differ; a run that cannot be saved says so in the status bar; the comparison's legend sits
below its plots; the screenshots leave the library alone."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from hsviewer.core.library.store import Library
from tests.support import TEXT, wait_job


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("the museum of modern art in amsterdam is a building")
    (folder / "b.txt").write_text("a city square , located close to the north wing")
    (folder / "c.txt").write_text("it was designed by architects for the municipal museum")
    return folder


def band_data(tab):
    """Every band plot's mean, low and high per run, as drawn."""
    return {
        (band.key, label): tuple(np.asarray(item.getData()[1]).tolist() for item in (low, high, mean))
        for band in tab.corpus_view.bands
        for label, (low, high, _, mean) in band.items.items()
    }


def test_a_corpus_sweep_is_saved_reopened_and_restored(qtbot, loaded, corpus, make_window, settings):
    tab, runs = loaded.sweep_tab, loaded.runs_tab
    tab.texts_source.set_path(str(corpus))
    tab.control_boxes["exclude_first"].setChecked(True)
    tab.form.threshold.setValue(90.0)
    with wait_job(qtbot, loaded, "sweep"):
        tab.run()
    qtbot.waitUntil(lambda: not loaded.jobs)
    swept = tab.corpus_result
    drawn, texts = band_data(tab), tab.corpus_view.texts.count()
    assert [(r.kind, r.setting) for r in runs.infos()] == [("corpus", "90%, 3 texts, 1 control")]
    corpus_info = runs.infos()[0]
    tab.texts_source.set_source(None)  # a one-text sweep, with other settings
    tab.control_boxes["exclude_first"].setChecked(False)
    tab.form.threshold.setValue(50.0)
    with wait_job(qtbot, loaded, "sweep"):
        tab.run()
    qtbot.waitUntil(lambda: not loaded.jobs)  # finished too: a saved sweep opens only when none runs
    assert tab.views.currentIndex() == 0
    submitted = []
    loaded.job_submitted.connect(submitted.append)
    runs.refresh()
    runs.open(next(r for r in runs.infos() if r.id == corpus_info.id))
    assert submitted == []  # redrawn, not computed
    assert tab.views.currentWidget() is tab.corpus_view and tab.corpus_result.to_dict() == swept.to_dict()
    np.testing.assert_equal(band_data(tab), drawn)  # NaN (a measure's gap) equal to NaN
    assert tab.corpus_view.texts.count() == texts == 3
    assert corpus_info.name in tab.summary.text()
    # the inputs it ran with, so that Run sweep repeats it
    assert tab.texts_source.corpus() == str(corpus) and tab.control_boxes["exclude_first"].isChecked()
    assert tab.form.threshold.value() == 90.0
    runs.open(next(r for r in runs.infos() if r.kind == "sweep"))
    assert tab.views.currentIndex() == 0 and tab.texts_source.corpus() is None
    assert tab.form.threshold.value() == 50.0 and not tab.control_boxes["exclude_first"].isChecked()
    one_text = tab.result
    loaded.close()
    again = make_window(settings)  # the sweep is the newest: its page in front, the corpus on its own
    assert again.sweep_tab.result == one_text and again.sweep_tab.views.currentIndex() == 0
    assert again.sweep_tab.corpus_result.to_dict() == swept.to_dict()
    np.testing.assert_equal(band_data(again.sweep_tab), drawn)


def test_the_newest_corpus_run_comes_back_in_front(qtbot, window, corpus, tiny_handle, make_window, settings):
    from hsviewer.core.analyses.corpus.run import iter_corpus_sweep
    from hsviewer.core.analyses.corpus.texts import read_corpus
    from hsviewer.core.analyses.sweep.run import layer_sweep
    from hsviewer.core.events import run_to_end

    handle = tiny_handle("gpt_neo")
    library = Library()
    older = library.save("sweep", layer_sweep(handle, TEXT), {"texts": [TEXT]})
    data = json.loads(older.path.read_text())
    older.path.write_text(json.dumps({**data, "created": "2001-01-01T00:00:00+00:00"}))  # not in the same second
    result = run_to_end(iter_corpus_sweep(handle, read_corpus(corpus).texts, source=str(corpus)))
    saved = library.save("corpus", result, {})
    window.close()
    again = make_window(settings)
    tab = again.sweep_tab
    assert tab.views.currentWidget() is tab.corpus_view and tab.corpus_result.to_dict() == result.to_dict()
    assert tab.result is not None  # the one-text sweep on its page
    assert saved.name in tab.summary.text()
    assert tab.texts_source.corpus() is None  # at start the inputs stay as the settings left them


def test_opening_a_reduction_sets_its_inputs_and_out_of_date_follows_them(qtbot, loaded, make_window, settings):
    tab = loaded.hidden_tab
    tab.layer.setValue(1)
    tab.form.mode.setCurrentIndex(1)
    tab.form.components.setValue(3)
    tab.form.centering.setCurrentIndex(tab.form.centering.findData("column"))
    ran_on = tab.text.toPlainText()
    with wait_job(qtbot, loaded, "hidden"):
        tab.run()
    saved = loaded.runs_tab.infos()[0]
    tab.text.setPlainText("the city square")
    tab.layer.setValue(2)
    tab.form.mode.setCurrentIndex(0)
    tab.form.centering.setCurrentIndex(tab.form.centering.findData("double"))
    assert tab.summary.text().startswith("<b>Out of date:</b>")
    loaded.runs_tab.open(saved)
    assert tab.text.toPlainText() == ran_on and tab.layer.value() == 1
    assert (tab.form.mode.currentIndex(), tab.form.components.value()) == (1, 3)
    assert tab.form.centering.currentData() == "column"
    assert "Out of date" not in tab.summary.text() and saved.name in tab.summary.text()
    tab.layer.setValue(2)
    assert tab.summary.text().startswith("<b>Out of date:</b>")
    tab.layer.setValue(1)
    assert "Out of date" not in tab.summary.text()
    loaded.close()
    again = make_window(settings)  # restored with no model; then the same model loads
    assert again.hidden_tab.result is not None and "Out of date" not in again.hidden_tab.summary.text()
    again.tabs.setCurrentWidget(again.hidden_tab)
    rows = [0.0, float(len(again.hidden_tab.result.tokens))]
    qtbot.waitUntil(lambda: again.hidden_tab.original.plot.viewRange()[1] == rows)  # every token shown
    with qtbot.waitSignal(again.model_loaded, timeout=120_000):
        again.load_model(loaded.model_info.source)
    assert "Out of date" not in again.hidden_tab.summary.text()
    again.hidden_tab.form.components.setValue(4)
    assert again.hidden_tab.summary.text().startswith("<b>Out of date:</b>")


def test_a_run_that_cannot_be_saved_says_so_in_the_status_bar(qtbot, loaded, tmp_path, monkeypatch):
    library = os.environ["HSVIEWER_DATA_DIR"]
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the library's folder would be")
    monkeypatch.setenv("HSVIEWER_DATA_DIR", str(blocked))
    with wait_job(qtbot, loaded, "hidden"):
        loaded.hidden_tab.run()
    message = loaded.statusBar().currentMessage()
    assert message.startswith("The reduce run was not saved to the runs library:") and "not-a-folder" in message
    assert len(message.splitlines()) == 1 and loaded.errors == []
    assert loaded.hidden_tab.result is not None  # the result is still shown
    loaded.hidden_tab.layer.setValue(0)
    monkeypatch.setenv("HSVIEWER_DATA_DIR", library)
    with wait_job(qtbot, loaded, "hidden"):
        loaded.hidden_tab.run()
    assert loaded.statusBar().currentMessage() == ""  # the next job clears it


def test_the_comparison_legend_is_below_the_plots(qtbot, window, tiny_handle):
    from hsviewer.core.analyses.sweep.run import layer_sweep
    from hsviewer.core.linalg.reduction import Reduction

    library = Library()
    for arch in ("gpt_neo", "gpt_neox", "gpt2"):
        library.save("sweep", layer_sweep(tiny_handle(arch), TEXT, Reduction(threshold=90.0)), {}, name=arch)
    runs = window.runs_tab
    runs.refresh()
    view = runs.compare_view
    assert view.legend.parentItem().maximumHeight() == 0  # no room kept for a legend before a comparison
    runs.select([r.id for r in runs.infos()])
    runs.compare_selected()
    window.tabs.setCurrentWidget(runs)
    qtbot.waitUntil(lambda: view.legend.parentItem().sceneBoundingRect().top() > 0)  # laid out
    legend = view.legend.sceneBoundingRect()
    names = [label.text for _, label in view.legend.items]
    assert sorted(names) == ["gpt2 (3 blocks)", "gpt_neo (2 blocks)", "gpt_neox (4 blocks)"]
    assert legend.height() > 0
    for plot in (view.curves, view.differences):
        assert not legend.intersects(plot.getViewBox().sceneBoundingRect())
        assert plot.legend is None
    assert legend.top() >= view.differences.sceneBoundingRect().bottom() - 1


def test_screenshots_leave_the_runs_library_alone(tmp_path, tiny_model_dir):
    from hsviewer.gui.app import main

    assert main(screenshots=str(tmp_path / "shots"), model=str(tiny_model_dir)) == 0
    assert (tmp_path / "shots" / "layer_sweep.png").is_file()
    assert Library().list().runs == []


def test_the_massive_activation_is_ringed_and_the_spread_measures_marked(qtbot, loaded):
    tab = loaded.hidden_tab
    tab.layer.setValue(1)
    with wait_job(qtbot, loaded, "hidden"):
        tab.run()
    r = tab.result
    magnitude = np.abs(r.original.astype(np.float64))
    token, dimension = np.unravel_index(magnitude.argmax(), magnitude.shape)
    cell = tab.spike.cell  # the ring is drawn on the panel, over this cell of the heatmap
    assert (cell.x(), cell.y()) == (dimension + 0.5, token + 0.5)  # the centre of cell (token, dimension)
    assert tab.original.image.image[int(cell.y()), int(cell.x())] == r.original[token, dimension]
    tip = tab.spike.item.toolTip()
    ratio = magnitude.max() / np.median(magnitude)
    assert f"Largest |activation| = {magnitude.max():.4g}" in tip and f"×{ratio:.0f} the median" in tip
    assert f"token {token} {r.tokens[token]!r}, dimension {dimension}" in tip
    s2 = r.s.astype(np.float64) ** 2
    p = r.s[r.s > 0] / r.s.sum()
    lines = tab.measure_lines
    assert lines.participation.value() == pytest.approx(s2.sum() ** 2 / (s2**2).sum())
    assert lines.effective.value() == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert lines.participation.label.format.startswith("PR ") and lines.effective.label.format.startswith("eff. rank")
    assert lines.participation.scene() is tab.spectrum.plot.scene() and tab.spike.item.parentItem() is tab.original.plot
