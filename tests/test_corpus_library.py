"""Corpus runs in the runs library: they read back whole (cancelled ones too), are listed with their
number of texts, compare against one-text sweeps of another depth with their 95% bands, and the
command line saves them (not when stopped with Ctrl+C)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from hsviewer.cli import main
from hsviewer.core.analyses.corpus.results import CorpusResult
from hsviewer.core.analyses.corpus.run import iter_corpus_sweep
from hsviewer.core.analyses.corpus.texts import CorpusText
from hsviewer.core.analyses.sweep.run import layer_sweep
from hsviewer.core.analyses.sweep.spec import SweepSpec
from hsviewer.core.events import run_to_end
from hsviewer.core.library.compare import compare
from hsviewer.core.library.provenance import provenance
from hsviewer.core.library.store import Library, read_run
from hsviewer.core.linalg.reduction import Reduction
from tests.support import TEXT, ctrl_c_at_the_second_text, kept_after_the_first_text

TEXTS = [
    CorpusText(name="one", text="the museum of modern art in amsterdam is a building by van gogh ."),
    CorpusText(name="two", text="a city square , located close to the north wing , was designed by architects"),
    CorpusText(name="one", text="it is known as the municipal museum for contemporary art and design"),  # a name twice
]
T975_DF2 = 4.302653  # Student t, two-sided 95%, 2 degrees of freedom (tables)


@pytest.fixture(scope="module")
def corpus_run(tiny_handle):
    """Three texts on the 2-block model, with a grid and the exclude-first control."""
    reduction = Reduction(threshold=90.0, centering="column")
    events = iter_corpus_sweep(
        tiny_handle("gpt_neo"),
        TEXTS,
        SweepSpec(
            reduction=reduction, grid=[Reduction(threshold=80.0, centering="column")], controls=["exclude_first"]
        ),
        source="/somewhere/texts",
    )
    return run_to_end(events)


def partial_run(handle) -> CorpusResult:
    """What a consumer keeps when it stops after the first text."""
    result = kept_after_the_first_text(
        iter_corpus_sweep(handle, TEXTS, SweepSpec(reduction=Reduction(fixed_components=2)))
    )
    assert result is not None
    return result


def test_a_corpus_run_reads_back_from_its_dict(corpus_run, tiny_handle):
    data = corpus_run.to_dict()
    again = CorpusResult.from_dict(json.loads(json.dumps(data)))
    assert again.to_dict() == data
    assert again.texts == corpus_run.texts  # every text's sweep, controls and grid included
    assert again.names == ["one", "two", "one"] and again.hidden_size == 32
    assert again.reduction == corpus_run.reduction and again.controls == ["exclude_first"]
    partial = partial_run(tiny_handle("gpt_neo"))
    data = partial.to_dict()
    assert data["cancelled"] and len(data["texts"]) == 1
    assert CorpusResult.from_dict(json.loads(json.dumps(data))).to_dict() == data
    assert CorpusResult.from_dict(data).reduction.fixed_components == 2
    empty = CorpusResult(model="m", n_layers=2, hidden_size=32, reduction=Reduction(), source="x", cancelled=True)
    assert CorpusResult.from_dict(empty.to_dict()).to_dict() == empty.to_dict()


def test_a_saved_corpus_run_is_listed_with_its_texts_and_loads(tmp_path, corpus_run, tiny_handle):
    library = Library(tmp_path)
    handle = tiny_handle("gpt_neo")
    info = library.save("corpus", corpus_run, provenance(handle, settings={}, texts=[t.text for t in TEXTS]))
    listed = library.list().runs
    assert [(r.kind, r.setting) for r in listed] == [("corpus", "90%, 3 texts, 1 control")]
    assert info.name == "corpus gpt_neo texts 90%, 3 texts, 1 control"
    run = library.load(info.id)
    assert run.result().to_dict() == corpus_run.to_dict()
    assert library.latest("corpus").info.id == info.id
    partial = library.save("corpus", partial_run(handle), {})
    assert read_run(partial.path).result().cancelled


def band_by_hand(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over texts (axis 0) and its 95% t interval, written out."""
    mean = values.mean(axis=0)
    half = T975_DF2 * values.std(axis=0, ddof=1) / math.sqrt(values.shape[0])
    return mean, mean - half, mean + half


def test_a_corpus_run_compares_with_a_sweep_of_another_depth(tmp_path, corpus_run, tiny_handle):
    library = Library(tmp_path)
    four = layer_sweep(tiny_handle("gpt_neox"), TEXT, Reduction(threshold=90.0))
    corpus_info = library.save("corpus", corpus_run, provenance(tiny_handle("gpt_neo"), settings={}, texts=[]))
    sweep_info = library.save("sweep", four, provenance(tiny_handle("gpt_neox"), settings={}, texts=[TEXT]))
    runs = [library.load(corpus_info.id), library.load(sweep_info.id)]
    comparison = compare(runs, "loss_change")
    corpus, sweep = comparison.curves
    np.testing.assert_allclose(corpus.depth, [0.0, 1.0])
    np.testing.assert_allclose(sweep.depth, [0, 1 / 3, 2 / 3, 1])
    losses = np.array([[r.loss - run.clean_loss for r in run.layers] for run in corpus_run.texts])
    mean, low, high = band_by_hand(losses)
    np.testing.assert_allclose(corpus.points.values, mean)
    np.testing.assert_allclose(corpus.points.low, low, rtol=1e-3)
    np.testing.assert_allclose(corpus.points.high, high, rtol=1e-3)
    assert sweep.points.low is None
    reference = [mean[0] + (mean[1] - mean[0]) * t for t in (0, 1 / 3, 2 / 3, 1)]
    own = np.array([r.loss for r in four.layers]) - four.clean_loss
    np.testing.assert_allclose(sweep.difference, own - np.array(reference))
    rows = comparison.rows()
    assert rows[0][7:9] == ["ci_low", "ci_high"]
    corpus_rows = [r for r in rows[1:] if r[1] == corpus_info.id]
    sweep_rows = [r for r in rows[1:] if r[1] == sweep_info.id]
    np.testing.assert_allclose([r[7] for r in corpus_rows], low, rtol=1e-3)
    assert len(sweep_rows) == 4 and all(r[7:9] == ["", ""] for r in sweep_rows)
    components = np.array([[r.components for r in run.layers] for run in corpus_run.texts], dtype=float)
    percent = compare(runs, "percent_rank").curves[0].points.values
    ranks = np.array([[min(len(run.tokens), 32)] for run in corpus_run.texts])
    np.testing.assert_allclose(percent, (100 * components / ranks).mean(axis=0))


# The command line ------------------------------------------------------------------------


@pytest.fixture
def corpus_folder(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for text in TEXTS[:2]:
        (folder / f"{text.name}.txt").write_text(text.text)
    return folder


def test_sweep_texts_saves_the_corpus_run_unless_told_not_to(tiny_folder, corpus_folder, tmp_path, capsys):
    model = str(tiny_folder("gpt_neo"))
    out = tmp_path / "c.json"
    args = ["sweep", "--model", model, "--device", "cpu", "--texts", str(corpus_folder), "--out", str(out)]
    assert main(args) == 0
    assert "Saved to the runs library as" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "d.json"), "--no-save"]) == 0
    assert "Saved to the runs library" not in capsys.readouterr().err
    assert main(["runs", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["kind"], r["setting"]) for r in listed] == [("corpus", "95%, 2 texts")]
    saved = read_run(listed[0]["path"])
    assert saved.data == json.loads(out.read_text())
    assert saved.provenance["texts"] == [TEXTS[0].text, TEXTS[1].text]
    assert saved.provenance["settings"]["source"] == str(corpus_folder)
    assert main(["runs", "show", listed[0]["id"]]) == 0
    assert "2 texts swept, mean [95% interval] over texts" in capsys.readouterr().out


def test_a_corpus_sweep_stopped_with_ctrl_c_is_not_saved(tiny_folder, corpus_folder, tmp_path, monkeypatch, capsys):

    ctrl_c_at_the_second_text(monkeypatch)
    out = tmp_path / "c.json"
    args = ["sweep", "--model", str(tiny_folder("gpt_neo")), "--texts", str(corpus_folder), "--out", str(out)]
    assert main(args) == 130
    assert json.loads(out.read_text())["cancelled"]
    assert "not saved to the runs library" in capsys.readouterr().err
    assert Library().list().runs == []


def test_compare_a_corpus_json_with_a_sweep_on_the_command_line(corpus_run, tiny_handle, tmp_path, capsys):
    corpus_json = tmp_path / "corpus.json"
    corpus_json.write_text(json.dumps(corpus_run.to_dict()))  # sweep --texts --out's own JSON
    four = layer_sweep(tiny_handle("gpt_neox"), TEXT, Reduction(threshold=90.0))
    Library().save("sweep", four, {}, name="four")
    out, table = tmp_path / "cmp.png", tmp_path / "cmp.csv"
    assert main(["compare", str(corpus_json), "four", "--out", str(out), "--csv", str(table), "--metric", "kl"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.reader(table.open()))
    corpus_rows = [r for r in rows[1:] if r[0] == "corpus"]
    kl = np.array([[r.kl_divergence for r in run.layers] for run in corpus_run.texts])
    mean, low, high = band_by_hand(kl)
    np.testing.assert_allclose([float(r[6]) for r in corpus_rows], mean)
    np.testing.assert_allclose([float(r[7]) for r in corpus_rows], low, rtol=1e-3)
    np.testing.assert_allclose([float(r[8]) for r in corpus_rows], high, rtol=1e-3)
    assert [r[7] for r in rows[1:] if r[0] == "four"] == [""] * 4
    assert "corpus: 2 blocks, four: 4 blocks" in capsys.readouterr().out
