"""The sweep tab's corpus source: bands per layer, the texts with their departure, one text's sweep
on double-click, cancel keeping the texts done; and the threshold-free measures shown."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt

from hsviewer.core.analyses.corpus.results import TextDone
from tests.support import wait_job


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("the museum of modern art in amsterdam is a building")
    (folder / "b.txt").write_text("museum")  # one token: skipped with a note
    (folder / "c.txt").write_text("a city square , located close to the north wing")
    (folder / "d.txt").write_text("it was designed by architects for the municipal museum")
    return folder


def test_a_corpus_sweep_draws_bands_lists_texts_and_opens_one(qtbot, loaded, corpus, tmp_path):
    tab = loaded.sweep_tab
    tab.texts_source.set_path(str(corpus))
    tab.control_boxes["exclude_first"].setChecked(True)
    with wait_job(qtbot, loaded, "sweep"):
        tab.run()
    result = tab.corpus_result
    assert result is not None and result.names == ["a", "c", "d"] and not result.cancelled
    assert any(note.startswith("b: skipped") for note in result.notes) and "b: skipped" in tab.summary.text()
    assert tab.views.currentWidget() is tab.corpus_view
    rows = result.aggregate()
    kl_band = tab.corpus_view.bands[2]
    low, high, band, mean = kl_band.items[""]
    assert not band.path().isEmpty()  # the band is drawn, not only its edges known
    np.testing.assert_allclose(mean.getData()[1], [r.values["kl"].mean for r in rows])
    np.testing.assert_allclose(low.getData()[1], [r.values["kl"].ci95[0] for r in rows])
    np.testing.assert_allclose(high.getData()[1], [r.values["kl"].ci95[1] for r in rows])
    assert "exclude_first" in kl_band.items
    items = [tab.corpus_view.texts.item(i).text() for i in range(tab.corpus_view.texts.count())]
    departures = result.departures()
    assert items == [f"{d:5.2f}   {n}" for n, d in zip(result.names, departures, strict=True)]
    item = tab.corpus_view.texts.item(1)
    tab.corpus_view.texts.itemDoubleClicked.emit(item)
    assert tab.result is result.texts[1] and tab.views.currentIndex() == 0
    assert tab.start.run.tokens == result.texts[1].tokens
    assert len(tab.curves["exclude_first"]["loss"].getData()[0]) == 3
    measures = [r.measures.effective_rank for r in result.texts[1].layers]
    np.testing.assert_allclose(tab.measures_view.panels["effective_rank"].curves[""].getData()[1], measures)
    tab.views.setCurrentWidget(tab.corpus_view)
    loaded.tabs.setCurrentWidget(tab)
    loaded.export_data(str(tmp_path / "corpus.json"))
    data = json.loads((tmp_path / "corpus.json").read_text())
    assert data["kind"] == "corpus" and len(data["texts"]) == 3 and len(data["aggregate"]["layers"]) == 3


def test_cancelling_a_corpus_sweep_keeps_the_texts_done(qtbot, loaded, corpus):
    tab = loaded.sweep_tab
    tab.texts_source.set_path(str(corpus))
    first = threading.Event()

    def submitted(job):
        def cancel_after_first(event):
            if isinstance(event, TextDone) and not first.is_set():
                first.set()
                job.cancel()

        job.yielded.connect(cancel_after_first, Qt.ConnectionType.DirectConnection)

    loaded.job_submitted.connect(submitted)
    with wait_job(qtbot, loaded, "sweep"):
        tab.run()
    result = tab.corpus_result
    assert result is not None and result.cancelled and result.names == ["a"]
    assert "cancelled" in tab.summary.text() and tab.corpus_view.texts.count() == 1


def test_the_hidden_state_summary_names_the_measures(qtbot, loaded):
    tab = loaded.hidden_tab
    with wait_job(qtbot, loaded, "hidden"):
        tab.run()
    m = tab.result.measures
    assert f"Participation ratio {m.participation_ratio:.2f}" in tab.summary.text()
    assert f"dimension {m.massive_activation.dimension}" in tab.summary.text()
