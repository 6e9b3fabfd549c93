"""Ctrl+C and SIGTERM (what `timeout`, systemd and batch schedulers send) stop the CLI's work the same
way: the texts or layers done are written, nothing is left half-written; the app closes its window."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hsviewer.cli import main
from tests.support import CHILD_ENV, CHILD_TIMEOUT_S, cli_terminated_when

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parent.parent
CLOSE_TIMEOUT_S = 120  # from the signal to the app's exit: a hang fails here, however busy the machine


def test_sigterm_during_a_corpus_sweep_writes_the_texts_done(tiny_model_dir, tmp_path):
    corpus = tmp_path / "t.jsonl"
    texts = ["the museum of modern art in amsterdam", "van gogh designed the building", "the city square"] * 100
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out, csv = tmp_path / "c.json", tmp_path / "c.csv"
    args = ["sweep", "--model", str(tiny_model_dir), "--texts", str(corpus), "--out", str(out), "--csv", str(csv)]
    child = subprocess.Popen(
        [sys.executable, "-m", "hsviewer", *args],
        cwd=ROOT,
        env={**os.environ, **CHILD_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in child.stderr:
        if line.startswith("Text 3/300"):  # two texts done
            child.send_signal(signal.SIGTERM)
            break
    _, err = child.communicate(timeout=CHILD_TIMEOUT_S)
    assert child.returncode == 128 + signal.SIGTERM, err
    data = json.loads(out.read_text())
    assert data["cancelled"] and 2 <= len(data["texts"]) < 300
    assert csv.read_text().startswith("run,layer,n,")
    assert "hsviewer: interrupted; writing the" in err and "Traceback" not in err


def test_sigterm_during_a_sweep_writes_the_layers_done(tiny_model_dir, text, tmp_path):
    out, csv = tmp_path / "s.json", tmp_path / "s.csv"
    args = ["sweep", "--model", str(tiny_model_dir), "--text", text, "--out", str(out), "--csv", str(csv)]
    done = cli_terminated_when(args, "isinstance(event, LayerDone) and event.done == 2")
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    data = json.loads(out.read_text())
    assert data["cancelled"] and [r["layer"] for r in data["layers"]] == [0, 1]
    assert len(csv.read_text().splitlines()) == 3  # the header and two layers
    assert "writing the 2 layers done" in done.stderr and "Traceback" not in done.stderr
    assert "(cancelled: the layers above are all that ran)" in done.stdout


def test_ctrl_c_during_a_sweep_ends_the_progress_line_and_writes_the_layers_done(
    tiny_model_dir, text, tmp_path, monkeypatch, capsys
):
    from hsviewer.commands import common
    from hsviewer.core.analyses.sweep.results import LayerDone

    printer = common.ProgressPrinter.__call__

    def ctrl_c_after_the_first_layer(self, event):
        printer(self, event)
        if isinstance(event, LayerDone) and event.done == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(common.ProgressPrinter, "__call__", ctrl_c_after_the_first_layer)
    out = tmp_path / "s.json"
    assert main(["sweep", "--model", str(tiny_model_dir), "--text", text, "--out", str(out)]) == 130
    assert [r["layer"] for r in json.loads(out.read_text())["layers"]] == [0]
    err = capsys.readouterr().err
    assert re.search(r"sweep: 1/3 *\nhsviewer: interrupted; writing the 1 layer done", err), err


def test_ctrl_c_before_any_layer_ends_the_progress_line(tiny_model_dir, text, tmp_path, monkeypatch, capsys):
    from hsviewer.commands import common
    from hsviewer.core.events import Progress

    printer = common.ProgressPrinter.__call__

    def ctrl_c_at_the_clean_pass(self, event):
        printer(self, event)
        if isinstance(event, Progress) and event.message.startswith("Clean pass"):
            raise KeyboardInterrupt

    monkeypatch.setattr(common.ProgressPrinter, "__call__", ctrl_c_at_the_clean_pass)
    out = tmp_path / "s.json"
    assert main(["sweep", "--model", str(tiny_model_dir), "--text", text, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert err.endswith("…\nhsviewer: interrupted\n") and not out.exists()


def test_sigterm_during_a_conversion_leaves_no_half_built_folder(text, tmp_path, monkeypatch):
    from tests.gguf_files import write_tiny_gguf

    gguf = tmp_path / "llama.gguf"
    write_tiny_gguf(gguf, "llama", "Q8_0")
    cache = tmp_path / "cache"
    monkeypatch.setenv("HSVIEWER_CACHE_DIR", str(cache))
    out = tmp_path / "r.json"
    args = ["reduce", "--model", str(gguf), "--text", text, "--layer", "0", "--out", str(out)]
    done = cli_terminated_when(args, "event.message.startswith('Converting') and event.done == 3")
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert "tensor 3 of" in done.stderr and "Traceback" not in done.stderr
    assert list((cache / "models").iterdir()) == [] and not out.exists()


def test_sigterm_during_an_export_leaves_no_temporary_file(tiny_model_dir, text, tmp_path):
    from hsviewer.core.library.store import Library

    reduced = tmp_path / "r" / "r.json"
    assert main(["reduce", "--model", str(tiny_model_dir), "--text", text, "--layer", "1", "--out", str(reduced)]) == 0
    (run,) = Library().list().runs
    target = tmp_path / "export.json"
    target.write_text("old")
    script = (
        "import os, signal, sys\n"
        "from hsviewer import cli\n"
        "from hsviewer.core.library import writing as export\n"
        "def terminated(data):\n"
        "    def write(path):\n"
        "        path.write_text('half')\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return write\n"
        "export.json_writer = terminated\n"
        "sys.exit(cli.main(['runs', 'export', sys.argv[1], sys.argv[2]]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, run.id, str(target)],
        cwd=ROOT,
        env={**os.environ, **CHILD_ENV},
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert target.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["export.json", "r"]
    assert done.stderr == "hsviewer: interrupted\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_close_the_app_as_its_close_button(signum, tiny_model_dir, tmp_path):
    config = tmp_path / "config"
    env = {**os.environ, **CHILD_ENV, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(config)}
    child = subprocess.Popen(
        [sys.executable, "-m", "hsviewer", "gui", "--model", str(tiny_model_dir)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen = []
    for line in child.stderr:
        seen.append(line)
        if line.strip() == "hsviewer ready":
            child.send_signal(signum)
            break
    try:
        _, err = child.communicate(timeout=CLOSE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        _, err = child.communicate()
        pytest.fail(f"the app kept running after {signum.name}: {''.join(seen) + err}")
    err = "".join(seen) + err
    assert child.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    (settings,) = config.rglob("*.ini")  # saved on closing, as the close button saves them
    assert "geometry" in settings.read_text()
