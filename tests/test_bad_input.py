"""Bad input, second round (issue 12) and the command line without traps (issue 8, item 4).

Each test here failed before its fix. Commands run in-process through hsviewer.cli.main
unless what they check is the process itself (argv bytes, stdout, transformers' logging).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import hsviewer.core
from hsviewer.cli import build_parser, main
from hsviewer.core import HsviewerError, Reduction
from hsviewer.core.analyses.image import run as image_module
from hsviewer.core.analyses.image.kind import IMAGE
from hsviewer.core.analyses.reduce.kind import REDUCE
from hsviewer.core.library import writing as export
from hsviewer.core.resources import default_image
from tests.support import TEXT

OLD = b"the previous file, kept whole\n"
# hsviewer's progress printer, silenced here so that stderr holds only what went wrong
SILENT_PROGRESS = (
    "import hsviewer.cli as cli, hsviewer.commands.common as common; "
    "common.ProgressPrinter.__call__ = lambda self, event: None"
)


@pytest.fixture(autouse=True)
def silent_progress(monkeypatch):
    from hsviewer.commands import common

    monkeypatch.setattr(common.ProgressPrinter, "__call__", lambda self, event: None)


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(stderr: str | bytes) -> list[str]:
    """stderr's lines that are not blank."""
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    return [line for line in text.splitlines() if line.strip()]


def assert_one_line_error(code: int, err: str, *words: str) -> str:
    """Exit 2 and a single stderr line, hsviewer's, holding every word (case-insensitive)."""
    lines = error_lines(err)
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("hsviewer: error:"), err
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


@pytest.fixture
def no_loading(monkeypatch):
    """Any model load fails the test: the command must stop before it."""

    def load(*args, **kwargs):
        raise AssertionError(f"a model was loaded: {args}")

    monkeypatch.setattr(hsviewer.core, "load_model", load)


@pytest.fixture
def gray_png(tmp_path) -> Path:
    path = tmp_path / "gray.png"
    Image.fromarray((np.random.default_rng(3).random((24, 32)) * 255).astype(np.uint8)).save(path)
    return path


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def subprocess_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, HF_HUB_OFFLINE="1", QT_QPA_PLATFORM="offscreen")
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def hsviewer_process(*args, **kwargs) -> subprocess.CompletedProcess:
    """`hsviewer ARGS` in a fresh interpreter, without hsviewer's progress lines."""
    run = f"{SILENT_PROGRESS}; import sys; sys.exit(cli.main(sys.argv[1:]))"
    command = [sys.executable, "-c", run, *[a if isinstance(a, bytes) else str(a) for a in args]]
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(command, env=subprocess_env(), stderr=subprocess.PIPE, timeout=300, **kwargs)


# --- the app's options are not silently ignored -------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--model", "NOWHERE", "sweep", "--out", "{tmp}/s.json"],
        ["--model", "NOWHERE", "reduce", "--layer", "0", "--out", "{tmp}/s.json"],
        ["--selftest", "sweep", "--model", "{model}", "--out", "{tmp}/s.json"],
        ["--screenshots", "{tmp}/shots", "image", "{image}", "--out", "{tmp}/o"],
        ["--selftest", "--model", "{model}"],
        ["--selftest", "--screenshots", "{tmp}/shots"],
        ["--model", "{model}", "gui"],
        ["--selftest", "selftest"],
    ],
)
def test_an_app_option_with_a_command_is_an_error(args, capsys, monkeypatch, no_loading, tmp_path, tiny_model_dir):
    import hsviewer.commands.selftest
    import hsviewer.gui.app

    ran = []
    monkeypatch.setattr(hsviewer.commands.selftest, "selftest", lambda: ran.append("selftest") or 0)
    monkeypatch.setattr(hsviewer.gui.app, "main", lambda **kwargs: ran.append(("gui", kwargs)) or 0)
    fill = {"tmp": tmp_path, "model": tiny_model_dir, "image": default_image()}
    code, out, err = run(capsys, *[a.format(**fill) for a in args])
    assert_one_line_error(code, err, args[0])
    assert ran == [] and out == ""
    assert files_in(tmp_path) == set()


@pytest.mark.parametrize(
    "args, expected",
    [
        ([], ("gui", {"screenshots": None, "model": None})),
        (["--model", "M"], ("gui", {"screenshots": None, "model": "M"})),
        (["gui"], ("gui", {"screenshots": None, "model": None})),
        (["gui", "--model", "M"], ("gui", {"screenshots": None, "model": "M"})),
        (["--screenshots", "D"], ("gui", {"screenshots": "D", "model": None})),
        (["--screenshots", "D", "--model", "M"], ("gui", {"screenshots": "D", "model": "M"})),
        (["screenshots", "D"], ("gui", {"screenshots": "D", "model": None})),
        (["screenshots", "D", "--model", "M"], ("gui", {"screenshots": "D", "model": "M"})),
        (["--selftest"], "selftest"),
        (["selftest"], "selftest"),
    ],
)
def test_the_app_selftest_and_screenshots_old_and_new_spellings(args, expected, monkeypatch):
    import hsviewer.commands.selftest
    import hsviewer.gui.app

    ran = []
    monkeypatch.setattr(hsviewer.commands.selftest, "selftest", lambda: ran.append("selftest") or 0)
    monkeypatch.setattr(hsviewer.gui.app, "main", lambda **kwargs: ran.append(("gui", kwargs)) or 0)
    assert main(args) == 0
    assert ran == [expected]


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, hsviewer.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


def test_the_cli_choices_are_the_cores():
    from hsviewer.core.choices import CENTERINGS, CONTROLS, METHODS

    sweep = build_parser()._subparsers._group_actions[0].choices["sweep"]
    actions = {a.dest: a for a in sweep._actions}
    assert tuple(actions["centering"].choices) == CENTERINGS
    assert tuple(actions["method"].choices) == METHODS
    labels = ["exclude_first", "exclude_massive:100", "random", "shuffled"]  # exclude_massive with its default
    assert actions["controls"].type(",".join(CONTROLS)) == labels


def test_an_unknown_control_is_refused_before_loading(capsys, no_loading, tmp_path):
    code, _, err = run(capsys, "sweep", "--controls", "random,bogus", "--out", tmp_path / "s.json")
    assert_one_line_error(code, err, "bogus", "exclude_first")


# --- the grid -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "grid, k, words",
    [
        ("1.7,2", True, "1.7"),
        ("0,2", True, "'0'"),
        ("2,80%", True, "80%"),
        (",,,", True, "no values"),
        (",,,", False, "no values"),
        (" ; ", False, "no values"),
        ("eighty", False, "grid"),
    ],
)
def test_bad_grid_values_are_refused_before_loading(grid, k, words, capsys, no_loading, tmp_path):
    fixed = ["--components", "2"] if k else []
    code, _, err = run(capsys, "sweep", *fixed, "--grid", grid, "--out", tmp_path / "s.json")
    assert_one_line_error(code, err, words)
    assert files_in(tmp_path) == set()


def test_parse_grid_keeps_the_reduction_and_accepts_semicolons_and_percent():
    from hsviewer.core.linalg.grid import parse_grid

    base = Reduction(threshold=90.0, centering="column", exclude_first=True)
    grid = parse_grid(" 80 ; 95%, 99,", base)
    assert [g.threshold for g in grid] == [80.0, 95.0, 99.0]
    assert {(g.centering, g.exclude_first, g.fixed_components) for g in grid} == {("column", True, None)}
    fixed = Reduction(fixed_components=4, basis="random")
    assert [(g.fixed_components, g.basis) for g in parse_grid("2, 3.0;7", fixed)] == [
        (2, "random"),
        (3, "random"),
        (7, "random"),
    ]
    assert parse_grid("", base) == [] and parse_grid("   ", base) == []
    for bad, reduction in ((",,,", base), ("1.5", fixed), ("-3", fixed), ("101", base), ("nan", base)):
        with pytest.raises(HsviewerError):
            parse_grid(bad, reduction)


def test_the_sweep_tab_uses_the_core_parser():
    from hsviewer.gui.sweep_tab import parse_grid

    with pytest.raises(HsviewerError, match="no values"):
        parse_grid(",,,", "double")
    assert [g.threshold for g in parse_grid("80;90%", "none")] == [80.0, 90.0]


# --- outputs that are not regular files ---------------------------------------------------------


def reduce_args(model: Path, out: Path, text: str | bytes = TEXT) -> list:
    return ["reduce", "--model", model, "--text", text, "--layer", 0, "--device", "cpu", "--out", out]


def test_out_through_a_symlink_writes_the_target_and_keeps_the_link(capsys, tmp_path, tiny_model_dir):
    target = tmp_path / "target.json"
    target.write_bytes(OLD)
    link = tmp_path / "link.json"
    link.symlink_to("target.json")
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to("made.json")
    assert run(capsys, *reduce_args(tiny_model_dir, link))[0] == 0
    assert link.is_symlink() and os.readlink(link) == "target.json"
    assert json.loads(target.read_text())["layer"] == 0
    assert run(capsys, *reduce_args(tiny_model_dir, dangling))[0] == 0
    assert dangling.is_symlink() and json.loads((tmp_path / "made.json").read_text())["layer"] == 0
    assert files_in(tmp_path) == {"target.json", "link.json", "dangling.json", "made.json"}


@pytest.mark.parametrize("through_link", [False, True])
def test_out_to_a_fifo_writes_through_it(through_link, capsys, tmp_path, tiny_model_dir):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    out = tmp_path / "link.json" if through_link else fifo  # a link to a pipe, like /dev/stdout
    if through_link:
        out.symlink_to(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code, _, err = run(capsys, *reduce_args(tiny_model_dir, out))
    reader.join(timeout=60)
    assert code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and out.is_symlink() == through_link
    assert received and json.loads(received[0])["layer"] == 0
    assert files_in(tmp_path) == ({"pipe.json", "link.json"} if through_link else {"pipe.json"})


def test_out_to_a_character_device_writes_through_it(capsys, tmp_path, tiny_model_dir):
    device = tmp_path / "null.json"
    try:  # a null device of the test's own, never the system's /dev/null
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError) as e:
        pytest.skip(f"cannot make a device node here: {e}")
    code, _, err = run(capsys, *reduce_args(tiny_model_dir, device))
    assert code == 0, err
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert files_in(tmp_path) == {"null.json"}


@pytest.mark.parametrize("how", ["same", "dot", "link"])
def test_csv_naming_the_out_file_is_refused_before_loading(how, capsys, no_loading, tmp_path):
    out = tmp_path / "sweep.json"
    csv = {"same": out, "dot": tmp_path / "." / "sweep.json", "link": tmp_path / "link.csv"}[how]
    if how == "link":
        csv.symlink_to(out)
    code, _, err = run(capsys, "sweep", "--out", out, "--csv", csv)
    assert_one_line_error(code, err, "same file")
    assert not out.exists()


def test_write_atomic_on_a_full_disk_keeps_the_old_bytes_and_no_temporary(tmp_path):
    target = tmp_path / "data.json"
    target.write_bytes(OLD)

    def write(tmp):
        tmp.write_bytes(b"half of the new")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as caught:
        export.write_atomic(target, write)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_bytes() == OLD
    assert files_in(tmp_path) == {"data.json"}


def test_write_all_is_all_or_none(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.csv"
    first.write_bytes(OLD)

    def fail(tmp):
        tmp.write_text("x")
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError) as caught:
        export.write_all([(first, export.text_writer("new")), (second, fail)])
    assert caught.value.filename == str(second)
    assert first.read_bytes() == OLD and files_in(tmp_path) == {"a.json"}
    export.write_all([(first, export.text_writer("new")), (second, export.text_writer("rows"))])
    assert first.read_text() == "new" and second.read_text() == "rows"


# --- half a result ------------------------------------------------------------------------------


def test_image_whose_summary_cannot_be_written_leaves_no_pngs(capsys, tmp_path, gray_png):
    out = tmp_path / "out"
    (out / "summary.json").mkdir(parents=True)
    code, _, err = run(capsys, "image", gray_png, "--out", out)
    line = assert_one_line_error(code, err, str(out / "summary.json"))
    assert "/.summary.json." not in line  # the user's path, not a temporary file's
    assert files_in(out) == {"summary.json"}


def test_sweep_whose_csv_cannot_be_written_leaves_no_json(capsys, monkeypatch, tmp_path, tiny_model_dir):
    def full_disk(rows):
        def write(path):
            path.write_text("run,layer\n")
            raise OSError(errno.ENOSPC, "No space left on device")

        return write

    monkeypatch.setattr(export, "csv_writer", full_disk, raising=False)
    monkeypatch.setattr(export, "write_csv", lambda path, rows: full_disk(rows)(Path(path)))  # the old code's way
    out, csv = tmp_path / "s.json", tmp_path / "s.csv"
    args = ["sweep", "--model", tiny_model_dir, "--text", TEXT, "--device", "cpu", "--out", out, "--csv", csv]
    code, _, err = run(capsys, *args)
    assert_one_line_error(code, err, "s.csv", "No space left")
    assert files_in(tmp_path) == set()


# --- text ---------------------------------------------------------------------------------------


def test_invalid_utf8_in_text_is_replaced_with_a_warning(capsys, tmp_path, tiny_model_dir):
    out = tmp_path / "r.json"
    text = "the museum \udcff of modern art"  # what sys.argv holds for the byte 0xff
    code, _, err = run(capsys, *reduce_args(tiny_model_dir, out, text))
    assert code == 0, err
    assert "Traceback" not in err and "UTF-8" in err
    assert len(json.loads(out.read_text())["tokens"]) == 6  # five words and U+FFFD, an unknown word


def test_invalid_utf8_bytes_in_argv(tmp_path, tiny_model_dir):
    out = tmp_path / "r.json"
    result = hsviewer_process(*reduce_args(tiny_model_dir, out, b"the art \xff museum"))
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr and b"UTF-8" in result.stderr
    assert json.loads(out.read_text())["layer"] == 0


# --- images of more than 8 bits -----------------------------------------------------------------


def image_summary(capsys, path: Path, out: Path) -> dict:
    code, _, err = run(capsys, "image", path, "--downsample", "1", "--components", "3", "--out", out)
    assert code == 0, err
    return json.loads((out / "summary.json").read_text())


def to_range(x: np.ndarray) -> np.ndarray:
    return (x - x.min()) * 255 / (x.max() - x.min())


def wide_images(folder: Path) -> dict[str, tuple[Path, np.ndarray, str]]:
    """16-bit PNG, 32-bit integer TIFF, float TIFFs: the file, the pixels expected, a word of the note."""
    rng = np.random.default_rng(5)
    a16 = (rng.random((30, 40)) * 65535).astype(np.uint16)
    a32 = (rng.random((30, 40)) * 2**31).astype(np.int32)
    f01 = rng.random((30, 40)).astype(np.float32)
    fneg = (rng.random((30, 40)) * 6 - 2).astype(np.float32)
    cases = {
        "png16": ("i16.png", a16, a16.astype(float) * 255 / 65535, "16-bit"),
        "tiff32": ("i32.tif", a32, a32.astype(float) * 255 / a32.max(), "32-bit"),
        "float01": ("f01.tif", f01, f01.astype(float) * 255 / f01.astype(float).max(), "floating"),
        "float-negative": ("fneg.tif", fneg, to_range(fneg.astype(float)), "floating"),
    }
    out = {}
    for kind, (name, data, expected, word) in cases.items():
        Image.fromarray(data).save(folder / name)
        out[kind] = (folder / name, expected, word)
    return out


@pytest.mark.parametrize("kind", ["png16", "tiff32", "float01", "float-negative"])
def test_images_of_more_than_8_bits_are_scaled_by_their_range(kind, capsys, tmp_path):
    path, expected, word = wide_images(tmp_path)[kind]
    assert Image.open(path).mode in {"I;16", "I", "F"}
    summary = image_summary(capsys, path, tmp_path / "out")
    assert np.allclose(summary["singular_values"], np.linalg.svd(expected, compute_uv=False), rtol=1e-5)
    assert summary["shape"] == [30, 40]
    assert any(word in note for note in summary["warnings"]), summary["warnings"]
    loaded = image_module.load_image(path, 1)
    assert loaded.pixels.max() == pytest.approx(expected.max()) and loaded.pixels.min() == pytest.approx(expected.min())


# --- image size ---------------------------------------------------------------------------------


def test_a_huge_local_file_is_refused_before_it_is_read(capsys, monkeypatch, tmp_path):
    huge = tmp_path / "huge.png"
    with huge.open("wb") as f:
        f.truncate(600 * 2**20)  # sparse: no disk used
    reads = []
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: reads.append(self) or real_open(self, *a, **k))
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(("whole", self)) or real_read(self))
    code, _, err = run(capsys, "image", huge, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "600 MB")
    assert ("whole", huge) not in reads


def test_too_many_pixels_are_refused_before_decoding(capsys, monkeypatch, tmp_path, gray_png):
    monkeypatch.setattr(image_module, "MAX_PIXELS", 24 * 32 - 1, raising=False)
    code, _, err = run(capsys, "image", gray_png, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "32 x 24")
    monkeypatch.setattr(image_module, "MAX_PIXELS", 24 * 32)
    assert run(capsys, "image", gray_png, "--out", tmp_path / "o")[0] == 0


# --- messages that say the right thing ----------------------------------------------------------


def test_an_unreadable_image_says_read(capsys, monkeypatch, tmp_path, gray_png):
    real_open = Path.open

    def deny(self, *args, **kwargs):
        if self == gray_png:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", deny)
    code, _, err = run(capsys, "image", gray_png, "--out", tmp_path / "o")
    line = assert_one_line_error(code, err, "read", str(gray_png), "Permission denied")
    assert "write" not in line


@pytest.mark.parametrize("case", ["folder", "empty"])
def test_out_that_cannot_be_a_file_is_named_before_loading(case, capsys, no_loading, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    out = {"folder": str(folder), "empty": ""}[case]
    code, _, err = run(capsys, "reduce", "--layer", "0", "--out", out)
    line = assert_one_line_error(code, err, str(folder) if case == "folder" else "empty")
    assert "/." not in line  # no hidden temporary file named
    assert files_in(tmp_path) == {"results"} and files_in(folder) == set()


def test_a_model_folder_without_tokenizer_files_says_so(capsys, tmp_path, tiny_model_dir):
    import shutil

    folder = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_model_dir, folder)
    for path in folder.glob("tokenizer*"):
        path.unlink()
    code, _, err = run(capsys, *reduce_args(folder, tmp_path / "r.json"))
    line = assert_one_line_error(code, err, "tokenizer files", "missing")
    assert not line.rstrip().endswith(":")


def test_an_all_black_image_is_called_blank(capsys, tmp_path):
    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(black)
    code, _, err = run(capsys, "image", black, "--out", tmp_path / "o")
    line = assert_one_line_error(code, err, "blank")
    assert "token" not in line


class BrokenStdout:
    def __init__(self, error: Exception):
        self.error = error

    def write(self, text):
        raise self.error

    def flush(self):
        raise self.error


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), ValueError("I/O on closed file")])
def test_a_full_or_closed_stdout_is_a_note_not_a_failure(error, capsys, monkeypatch, tmp_path, gray_png):
    monkeypatch.setattr(sys, "stdout", BrokenStdout(error))
    code = main(["image", str(gray_png), "--out", str(tmp_path / "o")])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 0, err
    assert "stdout" in err and "error" not in err
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["shape"] == [12, 16]


def test_stdout_on_a_full_device(tmp_path, gray_png):
    with open("/dev/full", "w") as full:
        result = hsviewer_process("image", gray_png, "--out", tmp_path / "o", stdout=full)
    assert result.returncode == 0, result.stderr
    assert b"stdout" in result.stderr and b"Traceback" not in result.stderr
    assert (tmp_path / "o" / "summary.json").is_file()


# --- one line, not twenty -----------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["sizes", "no-layers"])
def test_a_config_that_does_not_fit_is_one_line(damage, tmp_path, tiny_model_dir):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update({"hidden_size": 64} if damage == "sizes" else {"num_hidden_layers": 0})
    (folder / "config.json").write_text(json.dumps(config))
    result = hsviewer_process(*reduce_args(folder, tmp_path / "r.json"))
    lines = error_lines(result.stderr)
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("hsviewer: error:"), lines
    assert "above report" not in lines[0]


def test_a_symlink_loop_is_no_hub_id(tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    result = hsviewer_process("reduce", "--model", "loop", "--layer", "0", "--out", tmp_path / "r.json", cwd=tmp_path)
    lines = error_lines(result.stderr)
    assert result.returncode == 2 and len(lines) == 1, lines
    assert "No model folder at loop" in lines[0] and "etry" not in result.stderr.decode()


# --- devices and memory -------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["meta", "gpu", "cuda:x", "cpu:0 ", "CPU"])
def test_a_bad_device_is_refused_before_loading(device, capsys, no_loading, tmp_path):
    code, _, err = run(capsys, "reduce", "--layer", "0", "--device", device, "--out", tmp_path / "r.json")
    assert_one_line_error(code, err, repr(device))


def test_load_model_refuses_a_bad_device_before_loading(monkeypatch, tiny_model_dir):
    from hsviewer.core.choices import check_device
    from hsviewer.core.model import loading as models

    monkeypatch.setattr(models, "resolve_source", lambda *a: pytest.fail("the model was looked up"))
    with pytest.raises(HsviewerError, match="'meta'"):
        models.load_model(str(tiny_model_dir), device="meta")
    assert [check_device(d) for d in ("cpu", "cuda", "cuda:1", "mps", None)] == [
        "cpu",
        "cuda",
        "cuda:1",
        "mps",
        None,
    ]


def raise_in_image_svd(monkeypatch, error: BaseException) -> None:
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(hsviewer.core, "image_svd", fail)


@pytest.mark.parametrize(
    "error, words",
    [
        (MemoryError(), "Out of memory"),
        (
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: "
                "you tried to allocate 123456789012 bytes. Error code 12 (Cannot allocate memory)"
            ),
            "115.0 GB",
        ),
        ("torch", "2.50 GiB"),
    ],
)
def test_out_of_memory_is_one_line(error, words, capsys, monkeypatch, tmp_path, gray_png):
    if error == "torch":
        import torch

        error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total capacity")
    raise_in_image_svd(monkeypatch, error)
    code, _, err = run(capsys, "image", gray_png, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "Out of memory", words)


def test_other_runtime_errors_are_not_called_out_of_memory(capsys, monkeypatch, tmp_path, gray_png):
    raise_in_image_svd(monkeypatch, RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["image", str(gray_png), "--out", str(tmp_path / "o")])


# --- what the mutation run showed untested ------------------------------------------------------


def test_gguf_file_key_changes_with_the_size_alone(tmp_path):
    from hsviewer.core.model.gguf_cache import file_key

    head, tail = b"GGUF" + bytes(2**20 - 4), b"\x07" * 2**20
    paths = []
    for name, middle in (("a", 2**19), ("b", 2**19 + 4096)):
        (tmp_path / name).mkdir()
        path = tmp_path / name / "model.gguf"
        path.write_bytes(head + b"\x01" * middle + tail)
        paths.append(path)
    assert paths[0].stat().st_size > 2 * 2**20 and paths[0].stat().st_size != paths[1].stat().st_size
    assert file_key(paths[0]) != file_key(paths[1])
    same = tmp_path / "c" / "model.gguf"
    same.parent.mkdir()
    same.write_bytes(paths[0].read_bytes())
    assert file_key(same) == file_key(paths[0])


def test_reduce_table_flags_exactly_the_reduced_layer():
    norms = [0.0, 0.0, 1.25, 3.5, 7.0]
    rows = REDUCE.table(SimpleNamespace(layer=2, diff_norms=norms))
    assert rows[0] == ["layer", "diff_norm", "reduced_layer"]
    assert rows[1:] == [[0, 0.0, 0], [1, 0.0, 0], [2, 1.25, 1], [3, 3.5, 0], [4, 7.0, 0]]


def test_reduce_table_of_a_real_reduction(tiny_model):
    from hsviewer.core import reduce_layer

    result = reduce_layer(tiny_model, TEXT, 1, Reduction(90.0))
    rows = REDUCE.table(result)
    assert [r[2] for r in rows[1:]] == [0, 1, 0]
    assert [r[1] for r in rows[1:]] == pytest.approx([float(n) for n in result.diff_norms])


def test_image_table_gives_each_component_its_value_and_cumulative_percent():
    rng = np.random.default_rng(2)
    pixels = rng.random((9, 6)) * 255
    rows = IMAGE.table(hsviewer.core.image_svd(pixels))
    s = np.linalg.svd(pixels, compute_uv=False)
    assert rows[0] == ["component", "singular_value", "cumulative_percent"]
    assert [r[0] for r in rows[1:]] == list(range(1, 7))
    assert np.allclose([r[1] for r in rows[1:]], s)
    assert np.allclose([r[2] for r in rows[1:]], 100 * np.cumsum(s**2) / np.sum(s**2))


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "--components", "2", "--grid", "1.7,2", "--out", "{tmp}/s.json"],
        ["sweep", "--out", "{tmp}/s.json", "--csv", "{tmp}/s.json"],
        ["reduce", "--layer", "0", "--out", "{tmp}"],
        ["reduce", "--layer", "0", "--device", "meta", "--out", "{tmp}/r.json"],
    ],
)
def test_refusals_before_loading_do_not_import_torch(args, tmp_path):
    argv = [a.format(tmp=tmp_path) for a in args]
    code = f"import sys; from hsviewer.cli import main; print(main({argv!r}), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True)
    assert out.stdout.split() == ["2", "False"], out.stderr


def test_a_hub_id_not_in_the_cache_fails_at_once_when_the_hub_cannot_be_reached(monkeypatch, capsys):
    """Without HF_HUB_OFFLINE, huggingface_hub would retry for about half a minute."""
    from hsviewer.core.model import pretrained

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(pretrained, "_explain", lambda *a: pytest.fail("a download was tried"))
    assert main(["reduce", "--model", "nobody/no-such-model-xyz", "--layer", "1", "--out", "x.json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "hsviewer: error: nobody/no-such-model-xyz is not in the local Hugging Face cache, and huggingface.co "
        "cannot be reached from here. Copy the model folder to this machine and choose it instead."
    )
