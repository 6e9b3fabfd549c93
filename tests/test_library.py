"""The runs library (save, list, load, rename, delete; provenance; damaged and newer files) and
comparisons of runs on relative depth, through the core and the command line."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from importlib import metadata
from types import SimpleNamespace

import numpy as np
import pytest

from hsviewer.cli import main
from hsviewer.core.analyses.reduce.run import reduce_layer
from hsviewer.core.analyses.sweep.run import layer_sweep
from hsviewer.core.errors import HsviewerError
from hsviewer.core.library.compare import compare
from hsviewer.core.library.provenance import file_sha256, provenance
from hsviewer.core.library.store import Library, Run, RunFileError, read_info, read_run
from hsviewer.core.linalg.reduction import Reduction
from tests.support import TEXT

SETTINGS = {"note": "test"}


@pytest.fixture(scope="module")
def sweeps(tiny_handle):
    """A grid-and-controls sweep on a 2-block model, and a plain one on a 4-block model."""
    two = layer_sweep(
        tiny_handle("gpt_neo"),
        TEXT,
        Reduction(threshold=90.0, centering="column"),
        grid=[Reduction(threshold=80.0, centering="column"), Reduction(threshold=99.0, centering="column")],
        controls=["exclude_first", "random"],
    )
    four = layer_sweep(tiny_handle("gpt_neox"), TEXT, Reduction(threshold=90.0))
    return two, four


def save(library, kind, result, handle, name=None):
    return library.save(kind, result, provenance(handle, settings=SETTINGS, texts=[TEXT]), name=name)


def test_a_saved_sweep_reads_back_as_the_same_result(tmp_path, sweeps, tiny_handle):
    library = Library(tmp_path)
    sweep = sweeps[0]
    info = save(library, "sweep", sweep, tiny_handle("gpt_neo"))
    loaded = library.load(info.id).result()
    assert loaded == sweep  # every layer, grid value, control and reduction option
    assert loaded.to_dict() == sweep.to_dict()
    assert loaded.controls["exclude_first"].reduction.exclude_first
    assert loaded.controls["random"].reduction.basis == "random"
    assert [g.threshold for g in loaded.grid] == [80.0, 99.0]


def test_a_saved_reduction_reads_back_with_its_matrices(tmp_path, tiny_handle):
    handle = tiny_handle("gpt_neox")
    result = reduce_layer(handle, TEXT, 2, Reduction(fixed_components=3, exclude_first=True, seed=4))
    library = Library(tmp_path)
    info = save(library, "reduce", result, handle)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{info.id}.json", f"{info.id}.npz"]
    loaded = library.load(info.name).result()
    assert loaded.to_dict() == result.to_dict()
    assert loaded.reduction == result.reduction
    for name in ("original", "reconstruction", "u", "s", "vh", "diff_norms"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(result, name))
        assert getattr(loaded, name).dtype == getattr(result, name).dtype


def test_provenance_names_the_model_its_hash_precision_device_and_versions(tmp_path, tiny_handle, tiny_folder):
    handle = tiny_handle("gpt_neo")
    made = provenance(handle, settings=SETTINGS, texts=[TEXT])
    weights = tiny_folder("gpt_neo") / "model.safetensors"
    files = made["model"]["files"]
    assert [f["path"] for f in files] == [str(weights)]
    assert files[0]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert made["model"]["n_layers"] == 2 and made["model"]["hidden_size"] == 32
    assert (made["dtype"], made["device"]) == ("float32", "cpu")
    assert made["versions"]["torch"] == metadata.version("torch")
    assert made["versions"]["transformers"] == metadata.version("transformers")
    assert made["texts"] == [TEXT] and made["settings"] == SETTINGS


def test_a_files_hash_is_kept_until_the_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("HSVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"abc")
    assert file_sha256(weights) == hashlib.sha256(b"abc").hexdigest()
    memo_file = tmp_path / "cache" / "file-hashes.json"
    memo = json.loads(memo_file.read_text())
    memo_file.write_text(json.dumps(dict.fromkeys(memo, "remembered")))
    assert file_sha256(weights) == "remembered"  # not read again
    os.utime(weights, ns=(1, 1))
    assert file_sha256(weights) == hashlib.sha256(b"abc").hexdigest()


def test_runs_are_listed_newest_first_renamed_and_deleted(tmp_path, sweeps, tiny_handle):
    library = Library(tmp_path)
    first = save(library, "sweep", sweeps[0], tiny_handle("gpt_neo"), name="two blocks")
    second = save(library, "sweep", sweeps[1], tiny_handle("gpt_neox"))
    assert [r.id for r in library.list().runs] in ([second.id, first.id], [first.id, second.id])
    assert library.list().runs[0].created >= library.list().runs[1].created
    assert second.name == "sweep gpt_neox 90%" and second.setting == "90%"
    renamed = library.rename(first.id, "  renamed  ")
    assert renamed.name == "renamed"
    assert library.find("renamed").id == first.id
    assert library.load("renamed").result() == sweeps[0]
    with pytest.raises(HsviewerError, match="cannot be empty"):
        library.rename(first.id, " ")
    library.delete("renamed")
    assert [r.id for r in library.list().runs] == [second.id]
    with pytest.raises(HsviewerError, match="No run called 'renamed'"):
        library.find("renamed")


def test_latest_is_the_newest_whole_run_of_its_kind(tmp_path, sweeps, tiny_handle):
    library = Library(tmp_path)
    assert library.latest("sweep") is None
    older = save(library, "sweep", sweeps[0], tiny_handle("gpt_neo"))
    newer = save(library, "sweep", sweeps[1], tiny_handle("gpt_neox"))
    data = json.loads(newer.path.read_text())
    data["created"] = "2999-01-01T00:00:00+00:00"
    del data["result"]["layers"]
    newer.path.write_text(json.dumps(data))  # the newest, but damaged
    assert library.latest("sweep").info.id == older.id
    assert library.latest("reduce") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: {**d, "version": 2}, "saved by a newer hsviewer (format 2); this version reads format 1"),
        (lambda d: {**d, "format": "other"}, "is not a hsviewer run"),
        (lambda d: {**d, "kind": "hologram"}, "holds a 'hologram' run, which this version cannot show"),
        (lambda d: {k: v for k, v in d.items() if k != "result"}, "damaged: its result is missing"),
    ],
)
def test_a_newer_or_damaged_run_file_is_one_clear_message_and_kept(tmp_path, sweeps, tiny_handle, change, message):
    library = Library(tmp_path)
    good = save(library, "sweep", sweeps[0], tiny_handle("gpt_neo"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(change(json.loads(good.path.read_text()))))
    before = bad.read_bytes()
    with pytest.raises(RunFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_run(bad)
    listing = library.list()
    assert [r.id for r in listing.runs] == [good.id]
    assert len(listing.problems) == 1 and "bad.json" in listing.problems[0]
    assert bad.read_bytes() == before  # nothing lost


def test_a_file_that_is_not_json_or_whose_matrices_are_gone_is_one_clear_message(tmp_path, tiny_handle):
    (tmp_path / "noise.json").write_bytes(b"\x89PNG not json")
    (tmp_path / "half.json").write_text('{"format": "hsviewer-run", "vers')
    with pytest.raises(RunFileError, match="not UTF-8"):
        read_run(tmp_path / "noise.json")
    with pytest.raises(RunFileError, match=r"half.json is damaged: not valid JSON"):
        read_run(tmp_path / "half.json")
    handle = tiny_handle("gpt_neo")
    info = save(Library(tmp_path), "reduce", reduce_layer(handle, TEXT, 1), handle)
    npz = info.path.with_suffix(".npz")
    npz.write_bytes(b"PK damaged")
    with pytest.raises(RunFileError, match="matrices cannot be read"):
        read_run(info.path)
    npz.unlink()
    with pytest.raises(RunFileError, match=r"matrices file .*npz is missing"):
        read_run(info.path)
    data = json.loads(info.path.read_text())
    del data["result"]["layer"]
    info.path.write_text(json.dumps(data))
    with pytest.raises(RunFileError, match="result cannot be read \\('layer' is missing\\)"):
        Run(info=read_info(info.path), provenance={}, data=data["result"]).result()


def test_compare_two_runs_of_different_depths_on_relative_depth(tmp_path, sweeps, tiny_handle):
    library = Library(tmp_path)
    two, four = sweeps
    runs = [
        library.load(save(library, "sweep", two, tiny_handle("gpt_neo"), name="two").id),
        library.load(save(library, "sweep", four, tiny_handle("gpt_neox"), name="four").id),
    ]
    comparison = compare(runs, "loss_change")
    a, b = comparison.curves
    np.testing.assert_allclose(a.depth, [0.0, 1.0])
    np.testing.assert_allclose(b.depth, [0.0, 1 / 3, 2 / 3, 1.0])
    loss_a = np.array([r.loss for r in two.layers]) - two.clean_loss
    loss_b = np.array([r.loss for r in four.layers]) - four.clean_loss
    np.testing.assert_allclose(a.points.values, loss_a)
    np.testing.assert_allclose(b.points.values, loss_b)
    # The reference (two blocks) on the straight line between its two points, by hand.
    reference_at_b = [loss_a[0] + (loss_a[1] - loss_a[0]) * t for t in (0, 1 / 3, 2 / 3, 1)]
    np.testing.assert_allclose(b.difference, loss_b - np.array(reference_at_b))
    np.testing.assert_array_equal(a.difference, [0.0, 0.0])
    rows = comparison.rows()
    assert rows[0][:7] == ["run", "id", "model", "n_layers", "layer", "relative_depth", "loss_change"]
    assert rows[0][-1] == "difference_from_two"
    assert [(r[0], r[4]) for r in rows[1:]] == [
        ("two", 0),
        ("two", 1),
        ("four", 0),
        ("four", 1),
        ("four", 2),
        ("four", 3),
    ]
    percent = compare(runs, "percent_rank").curves[1].points.values
    np.testing.assert_allclose(percent, [100 * r.components / min(len(four.tokens), 32) for r in four.layers])


def test_a_comparison_needs_two_per_layer_runs(tmp_path, sweeps, tiny_handle):
    library = Library(tmp_path)
    handle = tiny_handle("gpt_neo")
    sweep = library.load(save(library, "sweep", sweeps[0], handle).id)
    reduced = library.load(save(library, "reduce", reduce_layer(handle, TEXT, 0), handle).id)
    with pytest.raises(HsviewerError, match="two runs or more"):
        compare([sweep])
    with pytest.raises(HsviewerError, match="is a reduce run: comparisons take per-layer runs"):
        compare([sweep, reduced])


def test_corpus_runs_compare_by_their_means_with_a_band(tmp_path):
    def corpus(path, n_layers, means, half):
        layers = [
            {"layer": i, "loss_change_mean": m, "loss_change_ci95": half, "components_mean": 1, "kl_mean": 0}
            for i, m in enumerate(means)
        ]
        result = {
            "kind": "corpus",
            "model": "m",
            "n_layers": n_layers,
            "threshold": 90,
            "aggregate": {"layers": layers},
        }
        data = {"format": "hsviewer-run", "version": 1, "kind": "corpus", "id": path.stem, "name": path.stem}
        path.write_text(json.dumps({**data, "created": "2026-01-01T00:00:00", "provenance": {}, "result": result}))

    from hsviewer.core.library import store as library_module

    corpus(tmp_path / "a.json", 3, [0.0, 1.0, 2.0], 0.5)
    corpus(tmp_path / "b.json", 2, [1.0, 1.0], 0.25)
    plain = SimpleNamespace(from_dict=lambda data: data)  # these hand-written aggregates have no texts to load
    kinds = {
        **library_module.SAVED,
        "corpus": dataclasses.replace(library_module.SAVED["corpus"], result=plain, check=lambda data: None),
    }
    with pytest.MonkeyPatch.context() as m:
        m.setattr(library_module, "SAVED", kinds)
        comparison = compare([read_run(tmp_path / "a.json"), read_run(tmp_path / "b.json")])
    a, b = comparison.curves
    np.testing.assert_allclose(a.depth, [0, 0.5, 1])
    np.testing.assert_allclose(a.points.low, [-0.5, 0.5, 1.5])
    np.testing.assert_allclose(b.points.high, [1.25, 1.25])
    np.testing.assert_allclose(b.difference, [1.0 - 0.0, 1.0 - 2.0])


# The command line ------------------------------------------------------------------------


def test_cli_sweeps_save_to_the_library_unless_told_not_to(tmp_path, tiny_folder, capsys):
    model = str(tiny_folder("gpt_neo"))
    assert main(["sweep", "--model", model, "--text", TEXT, "--device", "cpu", "--out", str(tmp_path / "a.json")]) == 0
    assert "Saved to the runs library as" in capsys.readouterr().err
    argv = ["sweep", "--model", model, "--text", TEXT, "--device", "cpu", "--out", str(tmp_path / "b.json")]
    assert main([*argv, "--no-save"]) == 0
    assert "Saved to the runs library" not in capsys.readouterr().err
    assert main(["runs", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in listed] == ["sweep"]
    saved = read_run(listed[0]["path"])
    assert saved.data == json.loads((tmp_path / "a.json").read_text())
    assert main(["runs", "show", listed[0]["id"][:17]]) == 0
    shown = capsys.readouterr().out
    assert "sha256" in shown and "clean loss" in shown
    assert main(["runs", "export", listed[0]["name"], str(tmp_path / "export.json")]) == 0
    assert read_run(tmp_path / "export.json").data == saved.data


def test_cli_compare_writes_the_figure_and_the_csv(tmp_path, sweeps, tiny_handle, capsys):
    library = Library()
    two = save(library, "sweep", sweeps[0], tiny_handle("gpt_neo"), name="two")
    plain = tmp_path / "four.json"
    plain.write_text(json.dumps(sweeps[1].to_dict()))  # a sweep's own --out JSON works too
    out, table = tmp_path / "cmp.png", tmp_path / "cmp.csv"
    assert main(["compare", "two", str(plain), "--out", str(out), "--csv", str(table), "--metric", "kl"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.reader(table.open()))
    assert rows[0][6] == "kl" and len(rows) == 1 + 2 + 4
    four_rows = [r for r in rows[1:] if r[0] == "four"]
    np.testing.assert_allclose([float(r[6]) for r in four_rows], [r.kl_divergence for r in sweeps[1].layers])
    assert main(["compare", two.id, str(plain), "--out", str(tmp_path / "cmp.svg")]) == 0
    assert (tmp_path / "cmp.svg").read_text().rstrip().endswith("</svg>")


def test_cli_bad_runs_are_one_line_and_exit_code_2(tmp_path, sweeps, tiny_handle, capsys):
    library = Library()
    good = save(library, "sweep", sweeps[0], tiny_handle("gpt_neo"))
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**json.loads(good.path.read_text()), "version": 2}))
    out = tmp_path / "cmp.png"
    cases = [
        (["compare", good.id, str(newer), "--out", str(out)], "saved by a newer hsviewer (format 2)"),
        (["compare", good.id, "--out", str(out)], "two runs or more"),
        (["compare", good.id, "nothing-like-this", "--out", str(out)], "No run called 'nothing-like-this'"),
        (["compare", good.id, good.id, "--out", str(tmp_path / "cmp.jpg")], "not .jpg"),
        (["runs", "show", "nothing-like-this"], "No run called"),
        (["compare", good.id, str(tmp_path / "missing.json"), "--out", str(out)], "No run file at"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_replayed_events_rebuild_the_sweep(sweeps):
    from hsviewer.core.analyses.sweep.results import SweepCollector

    sweep = sweeps[0]
    collector = SweepCollector()
    for event in sweep.events(hidden_size=32):
        collector.add(event)
    assert collector.result == sweep
