"""Corpus sweeps: reading the texts, the per-layer aggregate against numpy by hand, skips and cancel."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hsviewer.core import HsviewerError, Reduction, layer_sweep
from hsviewer.core.analyses.corpus.results import Interval, TextSkipped, t975
from hsviewer.core.analyses.corpus.run import iter_corpus_sweep
from hsviewer.core.analyses.corpus.texts import BUNDLED, CorpusText, bundled_folder, read_corpus
from hsviewer.core.analyses.sweep.spec import SweepSpec
from hsviewer.core.events import Finished, run_to_end
from tests.support import kept_after_the_first_text

TEXTS = [
    CorpusText(name="one", text="the museum of modern art in amsterdam is a building by van gogh ."),
    CorpusText(name="two", text="a city square , located close to the north wing , was designed by architects"),
    CorpusText(name="three", text="it is known as the municipal museum for contemporary art and design"),
]


def test_a_folder_gives_one_text_per_txt_file_sorted_by_name(tmp_path):
    (tmp_path / "b.txt").write_text("second text\n")
    (tmp_path / "a.txt").write_text("\ufefffirst text")
    (tmp_path / "c.txt").write_text("   \n")
    (tmp_path / "notes.md").write_text("not a text")
    corpus = read_corpus(tmp_path)
    assert [(t.name, t.text) for t in corpus.texts] == [("a", "first text"), ("b", "second text")]
    assert corpus.notes == ["c: left out, it holds no text."]


def test_a_txt_file_splits_at_blank_lines(tmp_path):
    path = tmp_path / "many.txt"
    path.write_text("first one\nstill first\n\n\nsecond\r\n \r\nthird\n")
    assert [(t.name, t.text) for t in read_corpus(path).texts] == [
        ("many:1", "first one\nstill first"),
        ("many:2", "second"),
        ("many:3", "third"),
    ]


def test_jsonl_and_csv_read_the_text_field_and_a_name_when_given(tmp_path):
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"text": "alpha", "id": "x1"}\n\n{"text": "beta"}\n')
    assert [(t.name, t.text) for t in read_corpus(jsonl).texts] == [("x1", "alpha"), ("t:3", "beta")]
    csv = tmp_path / "t.csv"
    csv.write_text('name,text\nfirst,"one, with a comma"\nsecond,"two\nlines"\n')
    expected = [("first", "one, with a comma"), ("second", "two\nlines")]
    assert [(t.name, t.text) for t in read_corpus(csv).texts] == expected


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: p / "empty", "holds no .txt files"),
        (lambda p: p / "missing", "No corpus at"),
        (lambda p: _write(p / "t.csv", "title,body\na,b\n"), 'no "text" column (its columns: title, body)'),
        (lambda p: _write(p / "t.jsonl", '{"text": "fine"}\n{"body": "x"}\n'), "Line 2 of"),
        (lambda p: _write(p / "t.jsonl", '{"text": "fine"}\nnot json\n'), "Line 2 of"),
        (lambda p: _write(p / "t.txt", "\n \n\n"), "holds no texts"),
        (lambda p: _write(p / "t.json", "{}"), "is not a corpus"),
        (lambda p: _write(p / "t.txt", b"\xff\xfe bad"), "not UTF-8"),
    ],
)
def test_bad_corpora_get_one_clear_message(tmp_path, make, words):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HsviewerError) as raised:
        read_corpus(make(tmp_path))
    assert words in str(raised.value)


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def test_the_bundled_corpus_has_twenty_texts_of_many_kinds_under_cc0():
    corpus = read_corpus(BUNDLED)
    names = [t.name for t in corpus.texts]
    assert len(names) >= 20 and not corpus.notes
    for kind in ("prose", "encyclopedic", "dialogue", "code", "numbers", "french", "german"):
        assert any(name.startswith(kind) for name in names), kind
    assert "CC0 1.0" in (bundled_folder() / "SOURCES.md").read_text()


def test_t_quantiles():
    assert t975(2) == 4.303 and t975(1) == 12.706
    for df, exact in ((31, 2.0395), (40, 2.0211), (60, 2.0003), (120, 1.9799), (10_000, 1.9602)):
        assert t975(df) == pytest.approx(exact, abs=2e-4)
    assert Interval.of([3.0]) == Interval(mean=3.0, ci95=None)


def by_hand(values):
    x = np.asarray(values, dtype=float)
    half = 4.303 * x.std(ddof=1) / math.sqrt(3)
    return pytest.approx(x.mean(), rel=1e-9, abs=1e-12), [
        pytest.approx(x.mean() - half, rel=1e-9, abs=1e-12),
        pytest.approx(x.mean() + half, rel=1e-9, abs=1e-12),
    ]


def test_the_aggregate_of_three_texts_matches_a_hand_computation(tiny_handle):
    handle = tiny_handle("llama")
    reduction = Reduction(threshold=90)
    result = run_to_end(iter_corpus_sweep(handle, TEXTS, SweepSpec(reduction=reduction, controls=["exclude_first"])))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["kind"] == "corpus" and data["names"] == ["one", "two", "three"]
    assert data["model"] == handle.name and data["n_layers"] == 3 and data["threshold"] == 90
    assert [t["name"] for t in data["texts"]] == ["one", "two", "three"]
    own = [layer_sweep(handle, t.text, reduction, controls=["exclude_first"]) for t in TEXTS]  # each text alone
    ranks = [min(len(s.tokens), handle.hidden_size) for s in own]
    for layer, row in enumerate(data["aggregate"]["layers"]):
        comps = [s.layers[layer].components for s in own]
        assert (row["layer"], row["n"]) == (layer, 3)
        assert [row["components_mean"], row["components_ci95"]] == list(by_hand(comps))
        percent = [100 * c / r for c, r in zip(comps, ranks, strict=True)]
        assert [row["components_percent_mean"], row["components_percent_ci95"]] == list(by_hand(percent))
        change = [s.layers[layer].loss - s.clean_loss for s in own]
        assert [row["loss_change_mean"], row["loss_change_ci95"]] == list(by_hand(change))
        kl = [s.layers[layer].kl_divergence for s in own]
        assert [row["kl_mean"], row["kl_ci95"]] == list(by_hand(kl))
        assert [row["variance_kept_mean"], row["variance_kept_ci95"]] == list(
            by_hand([s.layers[layer].variance_kept for s in own])
        )
    control = data["aggregate"]["controls"]["exclude_first"]["layers"]
    for layer, row in enumerate(control):
        runs = [s.controls["exclude_first"] for s in own]
        percent = [100 * r.layers[layer].components / min(len(r.tokens) - 1, handle.hidden_size) for r in runs]
        assert [row["components_percent_mean"], row["components_percent_ci95"]] == list(by_hand(percent))
        change = [r.layers[layer].loss - r.clean_loss for r in runs]
        assert [row["loss_change_mean"], row["loss_change_ci95"]] == list(by_hand(change))
    means = [row["components_mean"] for row in data["aggregate"]["layers"]]
    first = np.mean([abs(r.components - m) for r, m in zip(own[0].layers, means, strict=True)])
    assert data["aggregate"]["departures"][0] == pytest.approx(first)


def test_a_one_token_text_is_skipped_with_a_note_and_the_rest_run(tiny_handle):
    texts = [TEXTS[0], CorpusText(name="short", text="museum"), TEXTS[1]]
    events = list(iter_corpus_sweep(tiny_handle("llama"), texts, SweepSpec(reduction=Reduction(threshold=90))))
    skipped = [e for e in events if isinstance(e, TextSkipped)]
    assert [(e.index, e.name) for e in skipped] == [(1, "short")] and "two tokens" in skipped[0].reason
    result = events[-1].result
    assert isinstance(events[-1], Finished) and result.names == ["one", "two"] and not result.cancelled
    assert result.notes == [skipped[0].note] and result.to_dict()["aggregate"]["layers"][0]["n"] == 2


def test_a_corpus_of_only_one_token_texts_is_an_error(tiny_handle):
    texts = [CorpusText(name="a", text="museum"), CorpusText(name="b", text="art")]
    with pytest.raises(HsviewerError, match="No text of the corpus could be swept"):
        run_to_end(iter_corpus_sweep(tiny_handle("llama"), texts))


def test_cancelling_keeps_the_texts_done(tiny_handle):
    result = kept_after_the_first_text(
        iter_corpus_sweep(tiny_handle("llama"), TEXTS, SweepSpec(reduction=Reduction(threshold=90)))
    )
    assert result is not None and result.cancelled and result.names == ["one"]
    data = result.to_dict()
    assert data["cancelled"] and data["aggregate"]["layers"][0]["n"] == 1
    assert data["aggregate"]["layers"][0]["components_ci95"] is None  # one text: no interval
