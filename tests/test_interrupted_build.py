"""A first dequantisation cannot be interrupted: closing the app during it ends the process
at once, and the half-built folder it leaves is removed at the next start."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from hsviewer.core.model import gguf_cache

APP_CLOSED_DURING_A_BUILD = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from hsviewer.core.model import default as default_model
    from hsviewer.core.model import gguf_cache
    from hsviewer.gui import app as gui_app

    building = threading.Event()

    def build(gguf, folder, key, dtype="float32"):
        print("build started", flush=True)
        building.set()
        time.sleep(300)  # a dequantisation that never ends in time
        yield

    gguf_cache.build = build
    default_model.default_gguf_path = lambda: Path(sys.argv[1])
    qapp = QApplication([])

    def close_once_building():
        if building.is_set():
            for w in qapp.topLevelWidgets():
                w.close()

    poll = QTimer(interval=100, timeout=close_once_building)
    poll.start()
    sys.exit(gui_app.main(model="default"))
    """
)


def test_closing_during_a_first_dequantisation_ends_the_process(tmp_path):
    gguf = tmp_path / "default.gguf"
    gguf.write_bytes(b"GGUF" + bytes(64))
    env = dict(os.environ, HSVIEWER_CACHE_DIR=str(tmp_path / "cache"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    env["QT_QPA_PLATFORM"] = "offscreen"
    done = subprocess.run(
        [sys.executable, "-c", APP_CLOSED_DURING_A_BUILD, str(gguf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # far below the 300 s build: a hang fails here
    )
    assert "build started" in done.stdout, done.stderr
    assert done.returncode == 0, done.stderr
    assert "Exiting without waiting" in done.stderr
    assert "QThread" not in done.stderr and "Traceback" not in done.stderr


def test_half_built_folders_of_ended_processes_are_removed(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    models = tmp_path / "models"
    abandoned = models / f"{gguf_cache.BUILDING}{ended.stdout.strip()}-x1"
    unnamed = models / f"{gguf_cache.BUILDING}x2"  # no process id: an older layout
    live = models / f"{gguf_cache.BUILDING}{os.getpid()}-x3"  # a build still going on in this process
    for folder in (abandoned, unnamed, live):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(bytes(16))
    gguf_cache.remove_abandoned_builds(models)
    assert sorted(p.name for p in models.iterdir()) == [live.name]
