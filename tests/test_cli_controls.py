"""The command line's controls beyond the first token: sweep --controls exclude_first:4,exclude_massive
(one text and --texts), bad spellings in one line before loading, and reduce --exclude-first N."""

from __future__ import annotations

import json

import numpy as np
import pytest

import hsviewer.core
from hsviewer.cli import build_parser, main
from hsviewer.core.choices import CONTROL_SPELLINGS
from tests.support import TEXT


@pytest.fixture(autouse=True)
def silent_progress(monkeypatch):
    from hsviewer.commands import common

    monkeypatch.setattr(common.ProgressPrinter, "__call__", lambda self, event: None)


def one_line_error(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("hsviewer: error:"), err
    assert "Traceback" not in err
    return lines[0]


def test_sweep_with_exclude_first_4_and_exclude_massive_has_both_runs(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "s.json"
    args = ["sweep", "--model", str(tiny_model_dir), "--text", TEXT, "--threshold", "90", "--no-save"]
    assert main([*args, "--controls", "exclude_first:4,exclude_massive", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert list(data["controls"]) == ["exclude_first:4", "exclude_massive:100"]
    first, massive = data["controls"]["exclude_first:4"], data["controls"]["exclude_massive:100"]
    assert first["exclude_first"] == 4 and "exclude_massive" not in first
    assert massive["exclude_massive"] == 100.0 and massive["exclude_first"] is False
    assert [len(run["layers"]) for run in (first, massive)] == [3, 3]
    for layer in first["layers"]:
        assert "excluded_tokens" not in layer
        np.testing.assert_allclose(layer["token_diff_norms"][:4], 0.0, atol=1e-6)  # the first four unchanged
    for layer in massive["layers"]:
        magnitude = np.abs(np.asarray(layer["token_diff_norms"]))
        assert isinstance(layer["excluded_tokens"], list)
        assert all(magnitude[i] == 0.0 for i in layer["excluded_tokens"])
    assert all("excluded_tokens" not in layer for layer in data["layers"])


@pytest.mark.parametrize(
    "controls, words",
    [
        ("exclude_first:0", ["'exclude_first:0'", "at least 1"]),
        ("exclude_first:x", ["'exclude_first:x'"]),
        ("exclude_first:-2", ["'exclude_first:-2'"]),
        ("exclude_massive:1", ["'exclude_massive:1'", "above 1"]),
        ("exclude_massive:lots", ["'exclude_massive:lots'"]),
        ("random,bogus:3", ["'bogus:3'"]),
        ("exclude_first,exclude_first:1", ["twice"]),
    ],
)
def test_bad_control_spellings_end_in_one_line_before_loading(controls, words, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(hsviewer.core, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    code = main(["sweep", "--controls", controls, "--out", str(tmp_path / "s.json")])
    line = one_line_error(code, capsys.readouterr().err)
    for word in words:
        assert word in line
    assert not (tmp_path / "s.json").exists()


def test_the_controls_help_lists_the_spellings(capsys):
    sweep = build_parser()._subparsers._group_actions[0].choices["sweep"]
    help_text = " ".join(sweep.format_help().split())
    assert " ".join(CONTROL_SPELLINGS.split()) in help_text
    assert "exclude_first:N" in help_text and "exclude_massive:RATIO" in help_text


def test_sweep_texts_with_the_controls(tiny_model_dir, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(TEXT)
    (corpus / "b.txt").write_text("a building by van gogh , located close to the square .")
    out, csv = tmp_path / "c.json", tmp_path / "c.csv"
    args = ["sweep", "--model", str(tiny_model_dir), "--texts", str(corpus), "--threshold", "90", "--no-save"]
    assert main([*args, "--controls", "exclude_first:4,exclude_massive:2.5", "--out", str(out), "--csv", str(csv)]) == 0
    data = json.loads(out.read_text())
    assert data["controls"] == ["exclude_first:4", "exclude_massive:2.5"]
    assert set(data["aggregate"]["controls"]) == {"exclude_first:4", "exclude_massive:2.5"}
    for text in data["texts"]:
        assert text["controls"]["exclude_first:4"]["exclude_first"] == 4
        assert all("excluded_tokens" in layer for layer in text["controls"]["exclude_massive:2.5"]["layers"])
    runs = [row.split(",")[0] for row in csv.read_text().splitlines()[1:]]
    assert runs == ["main"] * 3 + ["exclude_first:4"] * 3 + ["exclude_massive:2.5"] * 3


@pytest.mark.parametrize("flag, n, saved", [(["--exclude-first"], 1, True), (["--exclude-first", "4"], 4, 4)])
def test_reduce_takes_a_count_and_the_old_flag(flag, n, saved, tiny_model_dir, tmp_path):
    out = tmp_path / "r.json"
    args = ["reduce", "--model", str(tiny_model_dir), "--text", TEXT, "--layer", "1", "--no-save"]
    assert main([*args, *flag, "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["exclude_first"] == saved and type(data["exclude_first"]) is type(saved)
    assert len(data["singular_values"]) == min(len(data["tokens"]) - n, 32)  # the rows after the first n


@pytest.mark.parametrize("value", ["0", "x", "-1"])
def test_reduce_refuses_a_bad_count(value, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(hsviewer.core, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    code = main(["reduce", "--layer", "1", f"--exclude-first={value}", "--out", str(tmp_path / "r.json")])
    assert "--exclude-first" in one_line_error(code, capsys.readouterr().err)
