"""The command line: its files follow the documented schema, bad input exits 2 with one line."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from hsviewer.cli import main
from hsviewer.core.resources import default_image

GEOMETRY_KEYS = {"anisotropy", "twonn_dimension", "prompt_entropy", "prompt_entropy_normalised", "linearity"}
LAYER_KEYS = {"layer", "components", "variance_kept", "hidden_diff_norm", "logit_diff_norm", "loss", "token_diff_norms"}


def test_image_writes_summary_and_pngs(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["image", str(default_image()), "--components", "20", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    pixels = np.asarray(Image.open(default_image()).convert("L"), dtype=float)[::2, ::2]
    s = np.linalg.svd(pixels, compute_uv=False)
    assert summary["shape"] == list(pixels.shape)
    assert summary["rank"] == np.linalg.matrix_rank(pixels)
    assert summary["components"] == 20 and summary["reconstruction_rank"] == 20
    assert np.allclose(summary["singular_values"], s)
    assert summary["frobenius_error"] == pytest.approx(np.sqrt(np.sum(s[20:] ** 2)))
    assert summary["variance_kept"] == pytest.approx(100 * np.sum(s[:20] ** 2) / np.sum(s**2))
    for name in ("original.png", "reconstruction.png", "spectrum.png"):
        assert Image.open(out / name).size[0] > 100
    assert "20 components" in capsys.readouterr().out


def test_sweep_writes_the_contract_and_prints_a_table(tiny_model_dir, text, tmp_path, capsys):
    out, csv = tmp_path / "sweep.json", tmp_path / "sweep.csv"
    args = ["sweep", "--model", str(tiny_model_dir), "--text", text, "--threshold", "90", "--out", str(out)]
    assert main([*args, "--csv", str(csv), "--grid", "80,99", "--controls", "random"]) == 0
    data = json.loads(out.read_text())
    assert {"model", "tokens", "n_layers", "threshold", "clean_loss", "layers"} <= set(data)
    assert data["threshold"] == 90 and data["n_layers"] == 3 == len(data["layers"])
    assert [r["layer"] for r in data["layers"]] == [0, 1, 2]
    assert all(set(r) >= LAYER_KEYS and len(r["token_diff_norms"]) == len(data["tokens"]) for r in data["layers"])
    assert len(data["grid"]["loss"]) == 3 and len(data["grid"]["loss"][0]) == 2
    assert len(data["controls"]["random"]["layers"]) == 3
    for run in (data, data["controls"]["random"]):  # the geometry measures, null only where they cannot say
        assert all(set(r) >= GEOMETRY_KEYS for r in run["layers"])
        assert [r["linearity"] is None for r in run["layers"]] == [False, False, True]
        assert run["massive_activation_onset"]["threshold"] == 100.0
    lines = csv.read_text().splitlines()
    assert (
        lines[0] == "run,layer,components,variance_kept,hidden_diff_norm,logit_diff_norm,loss,kl_divergence,clean_loss,"
        "loss_80%,loss_99%,participation_ratio,effective_rank,anisotropy,twonn_dimension,prompt_entropy,"
        "prompt_entropy_normalised,linearity"
    )
    assert [line.split(",")[0] for line in lines[1:]] == ["main"] * 3 + ["random"] * 3
    clean = {float(line.split(",")[8]) for line in lines[1:]}
    assert clean == {data["clean_loss"]} == {data["controls"]["random"]["clean_loss"]}
    table = capsys.readouterr().out
    assert "clean loss" in table and len([line for line in table.splitlines() if line.strip()[:1].isdigit()]) == 3


def test_reduce_writes_json(tiny_model_dir, text, tmp_path):
    out = tmp_path / "r.json"
    assert main(["reduce", "--model", str(tiny_model_dir), "--text", text, "--layer", "1", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["layer"] == 1 and len(data["diff_norms"]) == 3
    assert data["diff_norms"][0] == 0 and data["diff_norms"][1] > 0
    assert -1 <= data["correlation"] <= 1
    assert set(data) >= GEOMETRY_KEYS and 0 < data["linearity"] <= 1 and 0 < data["anisotropy"] <= 1


@pytest.mark.parametrize(
    "args, words",
    [
        (["image", "{tmp}/missing.png", "--out", "{tmp}/o"], "No image file"),
        (["image", "{tmp}/empty.png", "--out", "{tmp}/o"], "empty"),
        (["image", "{tmp}/text.png", "--out", "{tmp}/o"], "not an image"),
        (["image", "{image}", "--variance", "0", "--out", "{tmp}/o"], "Threshold"),
        (["image", "{image}", "--variance", "nan", "--out", "{tmp}/o"], "Threshold"),
        (["image", "{image}", "--components", "0", "--out", "{tmp}/o"], "Components"),
        (["image", "{image}", "--components", "100000", "--out", "{tmp}/o"], "Components"),
        (["sweep", "--model", "{tmp}/nomodel", "--out", "{tmp}/s.json"], "No model folder"),
        (["sweep", "--model", "{tmp}", "--out", "{tmp}/s.json"], "config.json"),
        (["sweep", "--model", "{model}", "--text", "  ", "--out", "{tmp}/s.json"], "empty"),
        (["sweep", "--model", "{model}", "--text", "the", "--out", "{tmp}/s.json"], "two tokens"),
        (
            ["sweep", "--model", "{model}", "--text", "the art", "--threshold", "101", "--out", "{tmp}/s.json"],
            "(0, 100]",
        ),
        (["reduce", "--model", "{model}", "--text", "the art", "--layer", "7", "--out", "{tmp}/r.json"], "Layer"),
        (["sweep", "--model", "{model}", "--text-file", "{tmp}/none.txt", "--out", "{tmp}/s.json"], "No text file"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, words, tiny_model_dir, tmp_path, capsys):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    fill = {"tmp": str(tmp_path), "image": str(default_image()), "model": str(tiny_model_dir)}
    assert main([a.format(**fill) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hsviewer: error:") and words in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "s.json").exists() and not (tmp_path / "o" / "summary.json").exists()


def test_python_dash_m_runs():
    out = subprocess.run([sys.executable, "-m", "hsviewer", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("hsviewer ")


def test_written_files_follow_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        assert main(["image", str(default_image()), "--components", "5", "--out", str(tmp_path)]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o644
