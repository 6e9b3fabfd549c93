"""sweep --texts: the corpus JSON of the issue, its table, and bad corpora ending in one line, nothing written."""

from __future__ import annotations

import json

import pytest

from hsviewer.cli import main
from hsviewer.core.linalg.measures import GEOMETRY
from tests.support import ctrl_c_at_the_second_text

AGGREGATE_KEYS = {
    "layer", "components_mean", "components_ci95", "loss_change_mean", "loss_change_ci95", "kl_mean", "kl_ci95",
}  # fmt: skip
GEOMETRY_KEYS = {"anisotropy", "twonn_dimension", "prompt_entropy", "prompt_entropy_normalised", "linearity"}


def test_sweep_texts_writes_one_sweep_per_text_and_the_aggregate(tiny_model_dir, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("the museum of modern art in amsterdam")
    (corpus / "b.txt").write_text("museum")  # one token: skipped with a note
    (corpus / "c.txt").write_text("a building by van gogh , located close to the square .")
    out, csv = tmp_path / "c.json", tmp_path / "c.csv"
    args = ["sweep", "--model", str(tiny_model_dir), "--texts", str(corpus), "--threshold", "90"]
    assert main([*args, "--controls", "exclude_first", "--out", str(out), "--csv", str(csv)]) == 0
    data = json.loads(out.read_text())
    assert {"model", "n_layers", "threshold", "texts", "aggregate"} <= set(data) and data["kind"] == "corpus"
    assert data["threshold"] == 90 and data["n_layers"] == 3 and [t["name"] for t in data["texts"]] == ["a", "c"]
    assert all(t["kind"] == "sweep" and len(t["layers"]) == 3 for t in data["texts"])
    assert all(set(r) >= GEOMETRY_KEYS for t in data["texts"] for r in t["layers"])
    assert all("massive_activation_onset" in t for t in data["texts"])
    layers = data["aggregate"]["layers"]
    assert [r["layer"] for r in layers] == [0, 1, 2] and all(set(r) >= AGGREGATE_KEYS for r in layers)
    assert all({f"{name}_{part}" for name in GEOMETRY_KEYS for part in ("mean", "ci95", "n")} <= set(r) for r in layers)
    assert layers[0]["anisotropy_n"] == 2 and layers[0]["twonn_dimension_n"] == 0  # both texts under 20 tokens
    low, high = layers[0]["components_ci95"]
    assert low <= layers[0]["components_mean"] <= high
    assert len(data["aggregate"]["controls"]["exclude_first"]["layers"]) == 3
    assert any("b: skipped" in note for note in data["notes"])
    captured = capsys.readouterr()
    assert "2 texts swept" in captured.out and "control exclude_first" in captured.out
    assert "note: b: skipped" in captured.err
    rows = csv.read_text().splitlines()
    assert rows[0].startswith("run,layer,n,components_mean,components_low,components_high")
    assert rows[0].endswith(
        ",kl_high,anisotropy_mean,anisotropy_low,anisotropy_high,"
        + ",".join(f"{name}_{part}" for name in GEOMETRY[1:] for part in ("mean", "low", "high"))
    )
    assert [r.split(",")[0] for r in rows[1:]] == ["main"] * 3 + ["exclude_first"] * 3


@pytest.mark.parametrize(
    "setup, words",
    [
        (lambda p: (p / "empty").mkdir() or p / "empty", "holds no .txt files"),
        (lambda p: (p / "t.csv").write_text("title\nhello there\n") and p / "t.csv", 'no "text" column'),
        (lambda p: (p / "t.txt").write_text("museum\n\nart") and p / "t.txt", "No text of the corpus"),
    ],
)
def test_bad_corpora_exit_2_with_one_line_and_write_nothing(setup, words, tiny_model_dir, tmp_path, capsys):
    corpus = setup(tmp_path)
    out = tmp_path / "c.json"
    assert main(["sweep", "--model", str(tiny_model_dir), "--texts", str(corpus), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hsviewer: error:") and words in err[-1]
    assert "Traceback" not in "\n".join(err) and not out.exists()


def test_texts_with_text_is_a_mistake(tiny_model_dir, tmp_path, capsys):
    args = ["sweep", "--model", str(tiny_model_dir), "--texts", "bundled", "--text", "hello", "--out", "x.json"]
    assert main(args) == 2
    assert "leave out --text" in capsys.readouterr().err


def test_reduce_prints_the_threshold_free_measures(tiny_model_dir, text, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["reduce", "--model", str(tiny_model_dir), "--text", text, "--layer", "1", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert f"Participation ratio {data['participation_ratio']:.2f}" in printed
    assert f"effective rank {data['effective_rank']:.2f}" in printed
    assert f"dimension {data['massive_activation']['dimension']}" in printed


def test_ctrl_c_writes_the_texts_done(tiny_model_dir, tmp_path, monkeypatch, capsys):

    corpus = tmp_path / "t.txt"
    corpus.write_text("the museum of modern art\n\nvan gogh designed the building\n\nthe city square")
    ctrl_c_at_the_second_text(monkeypatch)
    out = tmp_path / "c.json"
    assert main(["sweep", "--model", str(tiny_model_dir), "--texts", str(corpus), "--out", str(out)]) == 130
    data = json.loads(out.read_text())
    assert data["cancelled"] and data["names"] == ["t:1"] and data["aggregate"]["layers"][0]["components_ci95"] is None
    assert "writing the 1 text done" in capsys.readouterr().err
