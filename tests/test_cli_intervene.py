"""hsviewer intervene: its JSON and CSV, the per-layer table, the runs library, and bad input exiting 2."""

import json

import pytest

from hsviewer.cli import main
from hsviewer.core.library.compare import compare
from hsviewer.core.library.store import Library


def args_for(model, text, *more):
    return ["intervene", "--model", str(model), "--text", text, *more]


def test_intervene_writes_json_and_csv_and_saves_the_run(tiny_model_dir, text, tmp_path, capsys):
    out, csv = tmp_path / "i.json", tmp_path / "i.csv"
    more = ["--layer", "1", "--ratio", "3", "--value", "zero", "--out", str(out), "--csv", str(csv)]
    assert main(args_for(tiny_model_dir, text, *more)) == 0
    data = json.loads(out.read_text())
    assert data["kind"] == "intervene" and data["ratio"] == 3 and data["value"] == "zero"
    (layer,) = data["layers"]
    assert layer["layer"] == 1 and layer["entries"] > 0 and len(layer["positions"]) == min(layer["entries"], 50)
    assert layer["loss_change"] == pytest.approx(layer["loss"] - data["clean_loss"])
    lines = csv.read_text().splitlines()
    assert lines[0].startswith("layer,entries,largest_ratio") and len(lines) == 2
    printed = capsys.readouterr()
    assert "clean loss" in printed.out and f"{layer['entries']:>7}" in printed.out
    assert "Saved to the runs library" in printed.err
    (info,) = Library().list().runs
    assert info.kind == "intervene" and info.setting == "zero, ratio 3"
    assert main(["runs", "show", info.id]) == 0
    assert "entries over 3x the median |activation| set to zero" in capsys.readouterr().out


def test_layer_all_runs_every_block_and_interventions_compare(tiny_model_dir, text, tmp_path, capsys):
    for value in ("mean", "zero"):
        assert main(args_for(tiny_model_dir, text, "--layer", "all", "--ratio", "3", "--value", value)) == 0
    runs = [Library().load(info) for info in Library().list().runs]
    assert [len(r.data["layers"]) for r in runs] == [3, 3]
    comparison = compare(runs, "kl")
    assert [list(c.points.layers) for c in comparison.curves] == [[0, 1, 2]] * 2


def test_a_ratio_that_finds_nothing_says_so(tiny_model_dir, text, capsys):
    assert main(args_for(tiny_model_dir, text, "--layer", "0-1", "--ratio", "1e6", "--no-save")) == 0
    out = capsys.readouterr().out
    assert "No entry exceeds 1e+06x the median at any chosen layer: nothing changed there" in out
    assert not Library().list().runs


@pytest.mark.parametrize(
    "more, words",
    [
        (["--layer", "1", "--ratio", "0.5"], "the ratio is a number of at least 1"),
        (["--layer", "1", "--ratio", "lots"], "the ratio is a number of at least 1"),
        (["--layer", "1", "--ratio", "inf"], "the ratio is a number of at least 1"),
        (["--layer", "3"], "Layer must be a whole number from 0 to 2"),
        (["--layer", "0,7"], "Layer must be a whole number from 0 to 2"),
        (["--layer", "2-1"], "runs backwards"),
        (["--layer", "middle"], "Layers are a block number"),
        (["--layer", "1", "--value", "median"], "invalid choice"),
    ],
)
def test_bad_ratio_or_layer_exits_2_with_one_line(tiny_model_dir, text, more, words, capsys):
    assert main(args_for(tiny_model_dir, text, *more)) == 2
    err = capsys.readouterr().err.strip().splitlines()  # the model's load lines first, where it loaded
    errors = [line for line in err if "error" in line.lower()]
    assert errors == [err[-1]] and err[-1].startswith("hsviewer: error:") and words in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_checking_the_layers_while_parsing_loads_neither_numpy_nor_torch():
    from tests.test_core_imports import imported_after

    modules = imported_after(
        "import hsviewer.cli\nhsviewer.cli.build_parser().parse_args(['intervene', '--layer', '2-4'])"
    )
    assert {"numpy", "torch", "transformers"} & modules == set()
