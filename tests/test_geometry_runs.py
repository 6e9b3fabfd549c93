"""The geometry measures as the sweep, the reduction, the corpus sweep and comparisons report them, on
every tiny architecture, against the numpy references applied to hidden states captured by my own hooks."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from hsviewer.cli import main
from hsviewer.core import Reduction, layer_sweep, reduce_layer
from hsviewer.core.linalg.measures import GEOMETRY
from tests import geometry_reference as ref
from tests.support import TEXT
from tests.test_core_sweep import clean_run, token_ids
from tests.tiny_models import ARCHITECTURES

LONG = f"{TEXT} {TEXT}"  # about 40 tokens: enough for TwoNN's 20, within the tiny models' 64


def assert_layer_matches(row: dict, outputs: dict, n_layers: int, rel: float = 1e-6) -> None:
    """One layer's JSON against the references on the block outputs my hooks captured."""
    hs = outputs[row["layer"]]
    assert row["anisotropy"] == pytest.approx(ref.double_centred_anisotropy(hs), rel=rel)
    assert row["twonn_dimension"] == pytest.approx(ref.twonn(hs), rel=rel)
    entropy, normalised = ref.entropy(hs)
    assert row["prompt_entropy"] == pytest.approx(entropy, rel=rel)
    assert row["prompt_entropy_normalised"] == pytest.approx(normalised, rel=rel)
    if row["layer"] == n_layers - 1:
        assert row["linearity"] is None
    else:
        assert row["linearity"] == pytest.approx(ref.procrustes(hs, outputs[row["layer"] + 1]), rel=rel)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_sweep_layer_reports_the_geometry_of_its_clean_hidden_state(tiny_handle, arch):
    handle = tiny_handle(arch)
    _, _, outputs = clean_run(handle, token_ids(handle, LONG))
    assert len(next(iter(outputs.values()))) >= 20
    data = json.loads(
        json.dumps(
            layer_sweep(handle, LONG, Reduction(threshold=90), controls=["exclude_first"]).to_dict(), allow_nan=False
        )
    )
    for row in data["layers"]:
        assert row["twonn_dimension"] is not None and 0 < row["prompt_entropy_normalised"] <= 1
        assert_layer_matches(row, outputs, handle.n_layers)
    for plain, row in zip(data["layers"], data["controls"]["exclude_first"]["layers"], strict=True):
        # The control's basis leaves token 0 out, and so does its spectrum; the raw-state measures are the same.
        hs = outputs[row["layer"]]
        assert row["anisotropy"] == pytest.approx(ref.double_centred_anisotropy(hs, first=1), rel=1e-6)
        assert all(row[name] == plain[name] for name in GEOMETRY if name != "anisotropy")


def test_reduce_reports_the_geometry_and_no_linearity_at_the_last_block(tiny_handle):
    handle = tiny_handle("llama")
    _, _, outputs = clean_run(handle, token_ids(handle, LONG))
    for layer in (1, handle.n_layers - 1):
        data = reduce_layer(handle, LONG, layer, Reduction(threshold=90)).to_dict()
        assert_layer_matches(data, outputs, handle.n_layers)


def test_compare_overlays_a_measure_and_leaves_a_gap_where_a_layer_has_none(tiny_folder, tmp_path):
    runs = []
    for arch in ("gpt2", "gpt_neox"):
        out = tmp_path / f"{arch}.json"
        argv = ["sweep", "--model", str(tiny_folder(arch)), "--text", LONG, "--device", "cpu", "--out", str(out)]
        assert main([*argv, "--no-save"]) == 0
        runs.append(out)
    for metric in ("anisotropy", "linearity", "twonn_dimension"):
        table = tmp_path / f"{metric}.csv"
        assert (
            main(
                ["compare", *map(str, runs), "--out", str(tmp_path / "c.png"), "--csv", str(table), "--metric", metric]
            )
            == 0
        )
        rows = list(csv.reader(table.open()))
        assert rows[0][6] == metric
        for path in runs:
            layers = json.loads(path.read_text())["layers"]
            cells = [r[6] for r in rows[1:] if r[0] == path.stem]
            want = ["" if r[metric] is None else pytest.approx(r[metric]) for r in layers]
            assert [c if c == "" else float(c) for c in cells] == want
            assert (cells[-1] == "") == (metric == "linearity")  # the last block has no next one


def test_corpus_sweep_reports_the_geometry_per_text_and_aggregates_it(tiny_model_dir, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "long.txt").write_text(LONG)
    (corpus / "short.txt").write_text("the museum of modern art in amsterdam")  # 7 tokens: no TwoNN
    out = tmp_path / "c.json"
    argv = ["sweep", "--model", str(tiny_model_dir), "--texts", str(corpus), "--out", str(out), "--no-save"]
    assert main([*argv, "--controls", "shuffled"]) == 0
    data = json.loads(out.read_text())
    texts = {t["name"]: t for t in data["texts"]}
    assert all(set(GEOMETRY) <= set(row) for t in texts.values() for row in t["layers"])
    assert all(row["twonn_dimension"] is None for row in texts["short"]["layers"])
    for agg, long in zip(data["aggregate"]["layers"], texts["long"]["layers"], strict=True):
        assert agg["twonn_dimension_n"] == 1 and agg["twonn_dimension_mean"] == long["twonn_dimension"]
        assert agg["twonn_dimension_ci95"] is None  # one text
        assert agg["anisotropy_n"] == 2 and agg["anisotropy_ci95"] is not None
        means = [t["layers"][agg["layer"]]["prompt_entropy"] for t in texts.values()]
        assert agg["prompt_entropy_mean"] == pytest.approx(np.mean(means))
    assert data["aggregate"]["layers"][-1]["linearity_mean"] is None
    onset = data["aggregate"]["massive_activation_onset"]
    assert onset["layers"] == [texts[n]["massive_activation_onset"]["layer"] for n in data["names"]]
    assert "massive_activation_onset" in data["aggregate"]["controls"]["shuffled"]
