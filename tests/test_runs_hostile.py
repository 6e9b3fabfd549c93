"""Hostile and damaged files in the runs library (issue 18, items 1-6 and 16), through the command
line and the Runs tab: one bad file never ends a listing, a killed save leaves nothing listed and
nothing behind, no run is overwritten, a damaged run or matrices file is one clear message, names
are valid text and are printed inert, and a comparison's CSV holds no live formulas."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from hsviewer.cli import main
from hsviewer.core.analyses.reduce.run import reduce_layer
from hsviewer.core.analyses.sweep.run import layer_sweep
from hsviewer.core.library.provenance import provenance
from hsviewer.core.library.store import Library
from hsviewer.core.linalg.reduction import Reduction
from tests.support import TEXT

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep(tiny_handle):
    return layer_sweep(tiny_handle("gpt_neox"), TEXT, Reduction(threshold=90.0))


def save(kind, result, handle, name=None):
    return Library().save(kind, result, provenance(handle, settings={}, texts=[TEXT]), name=name)


def one_error(capsys, *words):
    """The command's stderr: one line, no traceback, holding every word."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


def edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# 1. One bad file never ends the listing ---------------------------------------------------


def deep_json(depth=100_000):
    return "[" * depth + "]" * depth


def test_a_deeply_nested_run_file_is_a_note_and_the_runs_are_listed(sweep, tiny_handle, capsys):
    good = save("sweep", sweep, tiny_handle("gpt_neox"), name="good")
    (good.path.parent / "deep.json").write_text(deep_json())
    assert main(["runs", "list"]) == 0
    captured = capsys.readouterr()
    assert good.id in captured.out and "good" in captured.out
    assert captured.err.strip().splitlines() == [
        "note: skipped deep.json is not a hsviewer run: its JSON is nested too deeply to be a run."
    ]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_fifo_named_like_a_run_is_a_note_and_never_waited_on(sweep, tiny_handle, capsys):
    good = save("sweep", sweep, tiny_handle("gpt_neox"), name="good")
    os.mkfifo(good.path.parent / "pipe.json")  # a listing that opened it for reading would wait forever
    assert main(["runs", "list"]) == 0
    captured = capsys.readouterr()
    assert good.id in captured.out and "good" in captured.out
    assert captured.err.strip().splitlines() == [
        "note: skipped pipe.json is not a hsviewer run: it is not a regular file."
    ]


def test_the_app_starts_with_its_runs_tab_when_a_run_file_is_nested_deeply(
    qtbot, make_window, settings, sweep, tiny_handle
):
    good = save("sweep", sweep, tiny_handle("gpt_neox"), name="good")
    (good.path.parent / "deep.json").write_text(deep_json())
    window = make_window(settings)
    runs = window.runs_tab
    assert [info.name for info in runs.infos()] == ["good"]
    assert "skipped 1 unreadable" in runs.status.text() and "nested too deeply" in runs.status.text()
    assert window.sweep_tab.result is not None and window.sweep_tab.result.to_dict() == sweep.to_dict()


# 2. A save killed half-way ----------------------------------------------------------------

KILLED_SAVE = """
import os, signal, sys
import numpy as np
from hsviewer.core.library.store import Library

class Result:  # what a save asks of a reduction's result
    def to_dict(self):
        return {"kind": "reduce", "model": "m", "layer": 0, "n_layers": 2, "threshold": 90.0}
    def arrays(self):
        return {"s": np.ones(3)}

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

os.replace = os.link = killed  # the moment between writing the files and naming them
Library(sys.argv[1]).save("reduce", Result(), {})
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_save_killed_before_naming_its_files_leaves_nothing_listed_and_its_leftovers_go(capsys):
    folder = Library().folder
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(folder)], env=env, capture_output=True)
    assert done.returncode == -9, done.stderr
    leftovers = sorted(p.name for p in folder.iterdir())
    assert leftovers and all(name.startswith(".") for name in leftovers)
    assert main(["runs", "list"]) == 0
    captured = capsys.readouterr()
    assert "No saved runs" in captured.out and captured.err == ""
    assert sorted(p.name for p in folder.iterdir()) == leftovers  # a save may still be under way: kept
    old = time.time() - 3600
    for name in leftovers:
        os.utime(folder / name, (old, old))
    assert main(["runs", "list"]) == 0
    assert "No saved runs" in capsys.readouterr().out
    assert list(folder.iterdir()) == []  # cleaned at the next start


def test_matrices_left_without_their_json_are_cleaned_and_a_whole_pair_kept(tiny_handle, capsys):
    handle = tiny_handle("gpt_neox")
    info = save("reduce", reduce_layer(handle, TEXT, 1), handle)
    orphan = info.path.with_name("20260101-000000-reduce-dead.npz")  # its JSON never came
    orphan.write_bytes(info.path.with_suffix(".npz").read_bytes())
    old = time.time() - 3600
    for path in (orphan, info.path, info.path.with_suffix(".npz")):
        os.utime(path, (old, old))
    assert main(["runs", "list"]) == 0
    assert info.id in capsys.readouterr().out
    assert sorted(p.name for p in info.path.parent.iterdir()) == [info.path.name, f"{info.id}.npz"]


# 3. No run is overwritten -----------------------------------------------------------------


def test_runs_export_into_the_library_is_refused(sweep, tiny_handle, capsys):
    handle = tiny_handle("gpt_neox")
    one, other = save("sweep", sweep, handle, name="one"), save("sweep", sweep, handle, name="other")
    before = other.path.read_bytes()
    assert main(["runs", "export", one.id, str(other.path)]) == 2
    one_error(capsys, "inside the runs library")
    assert main(["runs", "export", one.id, str(other.path.parent / "copy.json")]) == 2
    one_error(capsys, "inside the runs library")
    assert other.path.read_bytes() == before
    assert sorted(p.name for p in other.path.parent.iterdir()) == sorted([one.path.name, other.path.name])


class FrozenClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 1, 31, 14, 5, 0).astimezone()


def test_two_runs_saved_in_the_same_second_with_the_same_random_bits_both_stay(
    tiny_folder, monkeypatch, tmp_path, capsys
):
    from hsviewer.core.library import store as library

    tokens = iter(["beef", "beef", "cafe"])  # the second save draws the first one's id, then a free one
    monkeypatch.setattr(library.secrets, "token_hex", lambda n: next(tokens))
    monkeypatch.setattr(library, "datetime", FrozenClock)
    argv = ["sweep", "--model", str(tiny_folder("gpt_neo")), "--text", TEXT, "--device", "cpu"]
    assert main([*argv, "--threshold", "80", "--out", str(tmp_path / "a.json")]) == 0
    assert main([*argv, "--threshold", "99", "--out", str(tmp_path / "b.json")]) == 0
    capsys.readouterr()
    assert main(["runs", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(r["id"] for r in listed) == ["20260131-140500-sweep-beef", "20260131-140500-sweep-cafe"]
    assert sorted(r["setting"] for r in listed) == ["80%", "99%"]


def test_without_hard_links_a_colliding_reduction_takes_the_next_id_with_its_matrices(tiny_handle, monkeypatch):
    from hsviewer.core.library import store as library

    def no_links(source, target):
        raise PermissionError(1, "Operation not permitted")

    handle = tiny_handle("gpt_neox")
    result = reduce_layer(handle, TEXT, 1)
    tokens = iter(["beef", "beef", "cafe"])
    monkeypatch.setattr(library.secrets, "token_hex", lambda n: next(tokens))
    monkeypatch.setattr(library, "datetime", FrozenClock)
    monkeypatch.setattr(library.os, "link", no_links)  # a file system without hard links (FAT, some shares)
    first, second = save("reduce", result, handle, name="first"), save("reduce", result, handle, name="second")
    assert (first.id, second.id) == ("20260131-140500-reduce-beef", "20260131-140500-reduce-cafe")
    for info in (first, second):
        np.testing.assert_array_equal(Library().load(info.id).result().original, result.original)
    assert sorted(p.name for p in first.path.parent.iterdir()) == sorted(
        [first.path.name, f"{first.id}.npz", second.path.name, f"{second.id}.npz"]
    )


def test_a_model_named_in_other_bytes_than_utf8_still_saves_and_lists(sweep, tiny_handle, capsys):
    from dataclasses import replace

    odd = replace(sweep, model=os.fsdecode(b"tiny-\xff"))  # a model folder's name that is not UTF-8
    info = save("sweep", odd, tiny_handle("gpt_neox"))
    assert main(["runs", "list"]) == 0
    captured = capsys.readouterr()
    assert info.id in captured.out and "tiny-\ufffd" in captured.out and captured.err == ""


# 4. Damaged runs: one clear message -------------------------------------------------------

DAMAGE = {
    "no layers": (lambda d: d["result"].pop("layers"), "no list of layers"),
    "model a string": (lambda d: d["provenance"].update(model="gpt"), 'provenance\'s model is "gpt", not a table'),
    "empty file entry": (lambda d: d["provenance"]["model"]["files"].append({}), "model file 2 is a table"),
    "components text": (lambda d: d["result"]["layers"][0].update(components="abc"), 'components is "abc"'),
    "huge depth": (lambda d: d["result"].update(n_layers=10**400), "n_layers is a number of 401 digits"),
    "negative depth": (lambda d: d["result"].update(n_layers=-5), "n_layers is -5, not a number of blocks"),
    "layer past the depth": (lambda d: d["result"]["layers"][1].update(layer=9), "layer is 9, not a block"),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_run_is_one_clear_message_in_show_and_compare(case, sweep, tiny_handle, tmp_path, capsys):
    handle = tiny_handle("gpt_neox")
    good, bad = save("sweep", sweep, handle, name="good"), save("sweep", sweep, handle, name="bad")
    change, message = DAMAGE[case]
    edit(bad.path, change)
    assert main(["runs", "show", bad.id]) == 2
    one_error(capsys, f"{bad.path.name} is damaged", message)
    assert main(["compare", good.id, bad.id, "--out", str(tmp_path / "c.png")]) == 2
    one_error(capsys, f"{bad.path.name} is damaged", message)
    assert not (tmp_path / "c.png").exists()
    assert main(["runs", "show", good.id]) == 0  # the others still read


def test_a_damaged_reduction_and_corpus_run_are_one_clear_message(tiny_handle, capsys):
    handle = tiny_handle("gpt_neox")
    reduced = save("reduce", reduce_layer(handle, TEXT, 1), handle)
    edit(reduced.path, lambda d: d["result"].update(correlation="high"))
    assert main(["runs", "show", reduced.id]) == 2
    one_error(capsys, f"{reduced.path.name} is damaged", 'correlation is "high", not a number')
    corpus = Library().folder / "corpus.json"
    texts = [{"name": "a", **layer_sweep(handle, TEXT, Reduction(threshold=90.0)).to_dict()}]
    result = {"kind": "corpus", "model": "m", "n_layers": 4, "hidden_size": 32, "source": "", "names": ["a"]}
    result |= {"texts": texts, "notes": [], "aggregate": {"layers": [{"layer": 0, "components_mean": None}]}}
    envelope = {"format": "hsviewer-run", "version": 1, "kind": "corpus", "id": "corpus", "name": "corpus"}
    corpus.write_text(json.dumps({**envelope, "created": "2026-01-01T00:00:00", "provenance": {}, "result": result}))
    assert main(["runs", "show", "corpus"]) == 2
    one_error(capsys, "corpus.json is damaged", "aggregate layer 1's components_mean is null, not a number")


# 5. Matrices whose headers do not fit the run ---------------------------------------------


def npy_header(shape, dtype="<f4"):
    """A .npy file's header alone (magic, version, dictionary), as numpy writes it."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def replace_member(npz, name, header, zero_bytes):
    """The .npz again, its `name` member a header and that many zero bytes, deflated as they stream."""
    with np.load(npz) as old:
        kept = {k: old[k] for k in old.files if k != name}
    with zipfile.ZipFile(npz, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, array in kept.items():
            with archive.open(f"{key}.npy", "w") as f:
                np.lib.format.write_array(f, array)
        with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
            f.write(header)
            chunk = bytes(1 << 20)
            for start in range(0, zero_bytes, len(chunk)):
                f.write(chunk[: min(len(chunk), zero_bytes - start)])


@pytest.mark.parametrize(
    ("name", "claim", "message"),
    [
        # (shape claimed from the true one, zero bytes stored), what the message says
        ("s", lambda shape: ((2**40,), 64), "matrix 's' has shape (1099511627776,), which does not fit the run"),
        ("original", lambda shape: ((shape[0], 1 << 20), shape[0] << 22), "matrix 'original' has shape"),
        ("u", lambda shape: (shape, 1 << 27), "matrix 'u' holds 134217728 bytes where its shape"),
    ],
)
def test_matrices_that_claim_more_than_the_run_holds_are_damaged_not_read(name, claim, message, tiny_handle, capsys):
    handle = tiny_handle("gpt_neox")
    info = save("reduce", reduce_layer(handle, TEXT, 1), handle)
    npz = info.path.with_suffix(".npz")
    with np.load(npz) as arrays:
        shape, zeros = claim(arrays[name].shape)
    replace_member(npz, name, npy_header(shape), zeros)
    assert npz.stat().st_size < 1 << 20  # what it claims is far more
    assert main(["runs", "show", info.id]) == 2
    one_error(capsys, f"{npz.name} is damaged", message)


def test_the_app_starts_with_the_newest_whole_reduction_when_a_newer_ones_matrices_claim_gigabytes(
    qtbot, make_window, settings, tiny_handle
):
    handle = tiny_handle("gpt_neox")
    result = reduce_layer(handle, TEXT, 1)
    save("reduce", result, handle, name="good")
    bomb = save("reduce", result, handle, name="bomb")
    edit(bomb.path, lambda d: d.update(created="2099-01-01T00:00:00+00:00"))  # the newest: restored first
    tokens = result.original.shape[0]
    replace_member(bomb.path.with_suffix(".npz"), "original", npy_header((tokens, 1 << 20)), tokens << 22)
    window = make_window(settings)
    shown = window.hidden_tab.result
    assert shown is not None and shown.original.shape == result.original.shape
    np.testing.assert_array_equal(shown.original, result.original)
    assert [info.name for info in window.runs_tab.infos()] == ["bomb", "good"]
    window.runs_tab.open(window.runs_tab.infos()[0])
    assert len(window.errors) == 1 and "is damaged: its matrix 'original' has shape" in window.errors[0]


# 6 and 16. Names: valid text, printed inert, and no formulas in a CSV ---------------------


def test_a_name_that_is_not_valid_text_is_a_note_and_the_listing_goes_on(sweep, tiny_handle, capsys):
    handle = tiny_handle("gpt_neox")
    good, bad = save("sweep", sweep, handle, name="good"), save("sweep", sweep, handle, name="bad")
    edit(bad.path, lambda d: d.update(name="\ud800x"))
    assert "\\ud800x" in bad.path.read_text()  # as JSON writes a lone surrogate
    assert main(["runs", "list"]) == 0
    captured = capsys.readouterr()
    assert good.id in captured.out and "good" in captured.out
    assert f"{bad.path.name} is damaged: its name is not valid text" in captured.err
    with pytest.raises(Exception, match="must be valid text"):
        Library().rename(good.id, "\udcffname")
    assert main(["runs", "show", good.id]) == 0


def test_runs_list_and_show_print_terminal_escapes_inert(sweep, tiny_handle, capsys):
    name = "\x1b]0;owned\x07\x1b[31mred\u202e"
    info = save("sweep", sweep, tiny_handle("gpt_neox"), name=name)
    for argv in (["runs", "list"], ["runs", "show", info.id]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
        assert "\\x1b]0;owned\\x07\\x1b[31mred\\u202e" in out


def test_compare_csv_cells_that_would_be_formulas_are_escaped(sweep, tiny_handle, tmp_path, capsys):
    handle = tiny_handle("gpt_neox")
    names = ['=HYPERLINK("http://x.example","y")', "+1", "-2", "@SUM(A1)", "\tTab", "\rCR", "plain"]
    infos = [save("sweep", sweep, handle, name=n) for n in names]
    table = tmp_path / "c.csv"
    assert main(["compare", *[i.id for i in infos], "--out", str(tmp_path / "c.png"), "--csv", str(table)]) == 0
    rows = list(csv.reader(table.open(newline="")))
    labels = {r[0] for r in rows[1:]}
    assert labels == {"'" + n for n in names[:-1]} | {"plain"}
    assert rows[0][-1] == "difference_from_" + names[0]  # begins with d: no formula
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for cell in r[:3])
    negative = [r for r in rows[1:] if r[-1].startswith("-")]
    assert all(float(r[-1]) < 0 for r in negative)  # numbers are numbers, never quoted
    assert "\r" not in capsys.readouterr().out  # the names it prints are escaped too


# Smaller ones -----------------------------------------------------------------------------


class ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


def test_runs_show_into_a_closed_pipe_claims_no_files_written(sweep, tiny_handle, monkeypatch, capsys):
    info = save("sweep", sweep, tiny_handle("gpt_neox"))
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["runs", "show", info.id]) == 0
    err = capsys.readouterr().err
    assert "could not print to stdout (Broken pipe)" in err and "written" not in err


def test_a_fifty_run_comparison_keeps_its_legend_short(qtbot, window, sweep, tiny_handle):
    handle = tiny_handle("gpt_neox")
    infos = [save("sweep", sweep, handle, name=f"run number {i} with a long descriptive name") for i in range(50)]
    runs = window.runs_tab
    runs.refresh()
    runs.select([info.id for info in infos])
    runs.compare_selected()
    view = runs.compare_view
    assert len(view.comparison.curves) == 50
    entries = [label.text for _, label in view.legend.items]
    assert len(entries) == 12 and "and 39 more runs" in entries[-1]
    height = view.legend.parentItem().boundingRect().height()
    assert height < 0.25 * view.graphics.height()
