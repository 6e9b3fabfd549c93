"""Pictures of the geometry measures (issue 19, item 4): the sweep tab's Measures page over relative
depth, a curve per run, gaps for nulls, the massive-activation onset, a note for a run saved before the
measures; the Corpus page's bands of them; the comparison of a measure across runs, old ones included.
Every drawn number is checked against the result's JSON (to_dict()), read here independently."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from hsviewer.core.analyses.corpus.results import CorpusResult
from hsviewer.core.analyses.sweep.results import SweepResult
from hsviewer.core.library.store import Library
from tests import measure_runs
from tests.support import wait_job

NEW = ("anisotropy", "twonn_dimension", "prompt_entropy_normalised", "linearity")
SAVED_BEFORE = "not in this run: saved before hsviewer measured it"


def json_values(layers: list[dict], key: str) -> list[float]:
    """A measure per layer as the JSON has it, null as NaN (a gap)."""
    if key == "massive_activation":
        return [r["massive_activation"]["ratio"] for r in layers]
    return [math.nan if r.get(key) is None else r[key] for r in layers]


def drawn(curve) -> tuple[np.ndarray, np.ndarray]:
    """The data given to a curve (getData() would give log10 of it on a log axis)."""
    return np.asarray(curve.xData, dtype=float), np.asarray(curve.yData, dtype=float)


@pytest.fixture
def view(qtbot):
    from hsviewer.gui.measures_view import MeasuresView

    widget = MeasuresView()
    qtbot.addWidget(widget)
    return widget


def show_sweep(view, result: SweepResult) -> None:
    """As the sweep tab feeds the page: begin, then each run's layers."""
    view.begin()
    for label, run in [("", result), *result.controls.items()]:
        view.set_run(label, run)


def test_each_run_draws_the_json_values_over_relative_depth_with_gaps_for_nulls(view):
    result = measure_runs.sweep(controls=("exclude_first:4", "shuffled"))
    data = result.to_dict()
    show_sweep(view, result)
    depth = np.array([r["layer"] for r in data["layers"]]) / (data["n_layers"] - 1)
    runs = {"": data["layers"], **{name: run["layers"] for name, run in data["controls"].items()}}
    for key, panel in view.panels.items():
        assert panel.plot.getAxis("bottom").labelText == "Relative depth"
        assert set(panel.curves) == set(runs), key
        for label, layers in runs.items():
            x, y = drawn(panel.curves[label])
            np.testing.assert_allclose(x, depth)
            np.testing.assert_array_equal(y, json_values(layers, key))  # the very numbers, NaN where null
        assert not panel.note.isVisible(), key
    assert np.isnan(drawn(view.panels["twonn_dimension"].curves[""])[1][1])  # block 1 has none: a gap
    assert np.isnan(drawn(view.panels["linearity"].curves[""])[1][-1])  # no next block after the last
    legend = [label.text for _, label in view.panels["anisotropy"].plot.legend.items]
    assert legend == ["plain run", "exclude first 4 tokens", "shuffled tokens"]


def test_the_onset_is_marked_at_the_first_block_past_100_times_the_median(view):
    result = measure_runs.sweep()
    onset = result.to_dict()["massive_activation_onset"]
    ratios = [r["massive_activation"]["ratio"] for r in result.to_dict()["layers"]]
    first = next(i for i, ratio in enumerate(ratios) if ratio > 100)
    assert onset["layer"] == first == 2
    show_sweep(view, result)
    for panel in view.panels.values():
        assert panel.onset.isVisible() and panel.onset.value() == pytest.approx(first / (result.n_layers - 1))
    line = view.panels["massive_activation"].onset
    assert line.label.toPlainText() == "onset: layer 2\n(> 100×)" and line.toolTip() == "onset: layer 2 (> 100×)"
    quiet = measure_runs.sweep()
    for r in quiet.layers:  # no block past 100×: no onset
        r.measures = replace(r.measures, massive_activation=replace(r.measures.massive_activation, ratio=3.0))
    show_sweep(view, quiet)
    assert not any(panel.onset.isVisible() for panel in view.panels.values())


def test_a_run_saved_before_the_measures_shows_a_note_not_empty_axes(view):
    old = SweepResult.from_dict(measure_runs.saved_before_the_measures(measure_runs.sweep().to_dict()))
    show_sweep(view, old)
    for key in NEW:
        panel = view.panels[key]
        assert panel.note.isVisible() and panel.note.textItem.toPlainText() == SAVED_BEFORE, key
    for key in ("participation_ratio", "effective_rank", "massive_activation"):  # measured then already
        panel = view.panels[key]
        assert not panel.note.isVisible(), key
        np.testing.assert_array_equal(drawn(panel.curves[""])[1], json_values(old.to_dict()["layers"], key))


def test_twonn_on_a_short_text_says_why_it_has_none(view):
    short = measure_runs.sweep(tokens=12)
    for r in short.layers:
        r.measures = replace(r.measures, twonn_dimension=None)  # as the core gives it under 20 tokens
    show_sweep(view, short)
    note = view.panels["twonn_dimension"].note
    assert note.isVisible() and note.textItem.toPlainText() == "TwoNN needs 20 tokens or more: this text has 12"
    assert not view.panels["anisotropy"].note.isVisible()


def test_a_sweep_in_the_app_draws_every_run_on_the_measures_page(qtbot, loaded):
    tab = loaded.sweep_tab
    tab.control_boxes["exclude_first"].setChecked(True)
    tab.control_inputs.first_count.setValue(2)
    with wait_job(qtbot, loaded, "sweep"):
        tab.run()
    data = tab.result.to_dict()
    runs = {"": data["layers"], "exclude_first:2": data["controls"]["exclude_first:2"]["layers"]}
    panels = tab.measures_view.panels
    for key in ("anisotropy", "participation_ratio", "prompt_entropy_normalised", "linearity", "twonn_dimension"):
        for label, layers in runs.items():
            x, y = drawn(panels[key].curves[label])
            np.testing.assert_allclose(x, np.arange(data["n_layers"]) / (data["n_layers"] - 1))
            np.testing.assert_allclose(y, json_values(layers, key))
    # anisotropy reads the spectrum its run decomposed: without the first two tokens it differs
    assert not np.allclose(
        drawn(panels["anisotropy"].curves[""])[1], drawn(panels["anisotropy"].curves["exclude_first:2"])[1]
    )
    onset = data["massive_activation_onset"]["layer"]
    assert panels["massive_activation"].onset.isVisible() == (onset is not None)
    assert all(panel.plot.toolTip() for panel in panels.values())


T975 = {1: 12.706, 2: 4.303}  # Student's t(0.975, df), from the printed tables


def test_the_corpus_page_draws_each_measure_mean_with_its_95_percent_band(qtbot):
    from hsviewer.gui.corpus_view import CorpusView

    view = CorpusView()
    qtbot.addWidget(view)
    result = measure_runs.corpus()
    view.begin(result)
    view.update_result(result)
    data = result.to_dict()
    bands = {band.key: band for band in view.bands}
    texts = [t["layers"] for t in data["texts"]]
    depth = np.arange(data["n_layers"]) / (data["n_layers"] - 1)
    for key in ("participation_ratio", "effective_rank", *NEW):
        band = bands[key]
        assert band.plot.getAxis("bottom").labelText == "Relative depth"
        low, high, fill, mean = band.items[""]
        values = np.array([json_values(layers, key) for layers in texts])  # texts x layers
        for i, row in enumerate(data["aggregate"]["layers"]):
            column = values[np.isfinite(values[:, i]), i]
            edges = [drawn(low)[1][i], drawn(high)[1][i]]
            if not column.size:  # no text has it (TwoNN at block 1, linearity at the last): a gap
                assert np.isnan(drawn(mean)[1][i]) and np.isnan(edges).all() and row[f"{key}_ci95"] is None
                continue
            half = T975[len(column) - 1] * column.std(ddof=1) / math.sqrt(len(column))
            np.testing.assert_allclose(drawn(mean)[1][i], column.mean())
            np.testing.assert_allclose(edges, [column.mean() - half, column.mean() + half], rtol=1e-9)
            np.testing.assert_allclose(edges, row[f"{key}_ci95"])  # the band is the aggregate's interval
        np.testing.assert_allclose(drawn(mean)[0], depth)
        assert not fill.path().isEmpty(), key
        assert "exclude_first:4" in band.items and not band.note.isVisible()


def test_an_old_corpus_run_shows_the_note_in_the_measure_bands(qtbot):
    from hsviewer.gui.corpus_view import CorpusView

    data = measure_runs.corpus().to_dict()
    data["texts"] = [{"name": t["name"], **measure_runs.saved_before_the_measures(t)} for t in data["texts"]]
    old = CorpusResult.from_dict(data)
    view = CorpusView()
    qtbot.addWidget(view)
    view.begin(old)
    view.update_result(old)
    bands = {band.key: band for band in view.bands}
    for key in NEW:
        assert bands[key].note.isVisible() and bands[key].note.textItem.toPlainText() == SAVED_BEFORE, key
    for key in ("kl", "participation_ratio", "effective_rank"):
        assert not bands[key].note.isVisible(), key


def test_compare_overlays_a_new_measure_and_names_the_run_without_it(qtbot):
    from PySide6.QtWidgets import QComboBox

    from hsviewer.core.choices import METRICS
    from hsviewer.gui.compare_view import CompareView

    library = Library()
    new = measure_runs.sweep()
    old_data = measure_runs.saved_before_the_measures(measure_runs.sweep(0.4).to_dict())
    infos = [
        library.save("sweep", new, {}, name="measured"),
        library.save("sweep", SweepResult.from_dict(old_data), {}, name="older"),
        library.save("corpus", measure_runs.corpus(), {}, name="texts"),
    ]
    view = CompareView()
    qtbot.addWidget(view)
    box = view.findChild(QComboBox)  # the metric chooser, whatever its attribute's name
    listed = [box.itemData(i) for i in range(box.count())]
    assert listed == list(METRICS) and set(NEW) <= set(listed)
    view.compare_runs([library.load(info) for info in infos])
    view.set_metric("anisotropy")
    assert view.comparison is not None and view.comparison.metric == "anisotropy"
    lines = {item.name(): item for item in view.curves.listDataItems() if item.name()}
    x, y = drawn(lines["measured (5 blocks)"])
    np.testing.assert_allclose(x, np.arange(5) / 4)
    np.testing.assert_array_equal(y, json_values(new.to_dict()["layers"], "anisotropy"))
    assert "<b>Anisotropy (top direction's share of the variance): not in older</b>" in view.note.text()
    assert "saved before hsviewer measured it" in view.note.text()
    corpus = measure_runs.corpus().to_dict()["aggregate"]["layers"]
    bands = [item for item in view.curves.items if type(item).__name__ == "FillBetweenItem"]
    assert len(bands) == 1 and not bands[0].path().isEmpty()  # the corpus run's band
    texts = drawn(lines["texts (5 blocks)"])[1]
    np.testing.assert_allclose(texts, [r["anisotropy_mean"] for r in corpus])
    view.set_metric("kl")
    assert "not in" not in view.note.text()  # every run has the KL


def first_past_100(layers: list[dict]) -> int | None:
    """The onset read off the JSON: the first block whose largest |activation| passes 100 medians."""
    return next((r["layer"] for r in layers if r["massive_activation"]["ratio"] > 100), None)


def test_the_corpus_page_marks_the_texts_mean_onset_on_the_depth_panels(qtbot):
    from hsviewer.gui.corpus_view import CorpusView

    view = CorpusView()
    qtbot.addWidget(view)
    result = measure_runs.corpus(shifts=(0.0, 0.2, 1.5))  # 50 x 2.5 passes 100 at block 1 in the third
    data = result.to_dict()
    onsets = [first_past_100(t["layers"]) for t in data["texts"]]
    assert onsets == [2, 2, 1]
    view.begin(result)
    view.update_result(result)
    mean = sum(onsets) / len(onsets)
    for band in view.bands:
        if band.depth:
            assert band.onset.isVisible() and band.onset.value() == pytest.approx(mean / (data["n_layers"] - 1))
            assert band.onset.toolTip().startswith("Massive-activation onset: layer 1.7, the mean over 3 of 3 texts")
        else:  # over layer number, with no onset drawn
            assert not band.onset.isVisible(), band.key
    quiet = measure_runs.corpus(shifts=(-0.99,))  # 3000 x 0.01 = 30: no block past 100
    view.begin(quiet)
    view.update_result(quiet)
    assert not any(band.onset.isVisible() for band in view.bands)


def tick_labels(plot) -> list[str]:
    """The labels the bottom axis draws now (pyqtgraph drops one that reaches past the axis's end)."""
    from PySide6.QtGui import QImage, QPainter

    image = QImage(8, 8, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        specs = plot.getAxis("bottom").generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for *_, text in specs[2]]


def test_the_depth_axes_label_1_in_a_narrow_window(qtbot, view):
    view.resize(700, 560)  # three panels a row, each under 300 pixels wide, as at 1024x700
    view.show()
    show_sweep(view, measure_runs.sweep())
    qtbot.waitUntil(lambda: view.panels["anisotropy"].plot.getAxis("bottom").width() < 300)
    for key, panel in view.panels.items():
        assert tick_labels(panel.plot)[-1] == "1.0", key
