"""Shared helpers for the tests (conftest.py keeps only fixtures and hooks): the test text and
timeouts, a local HTTP server, crafted files, and the real main window with what drives it."""

from __future__ import annotations

import contextlib
import http.server
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

TIMEOUT_MS = 120_000  # generous: the check is that a load or a run ends, not how fast
CHILD_TIMEOUT_S = 600  # a process of its own imports torch first: minutes on a busy machine
CHILD_ENV = {"OMP_NUM_THREADS": "1"}  # as one_torch_thread: threads spinning against each other on busy cores
LOAD_TIMEOUT_MS = TIMEOUT_MS
HOLD_S = 60.0  # a held worker gives up after this, so a broken test fails instead of hanging
TEXT = "the museum of modern art in amsterdam is a building by van gogh , located close to the square ."


def replace_file(path: Path, data: bytes) -> None:
    """A new file renamed over the old one, as damage between sessions leaves it: a loaded
    model memory-maps its weights file, and writing into that mapping would corrupt it live."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    tmp.replace(path)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, with one tiny IDAT: a decompression bomb header."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers GET for the paths in `routes` (path -> (content type, body)); anything else is a 404."""

    routes: ClassVar[dict[str, tuple[str, bytes]]] = {}

    def do_GET(self):
        kind, body = self.routes.get(self.path, ("text/plain", b"not found"))
        self._send(200 if self.path in self.routes else 404, kind, body)

    def _send(self, status, kind, body):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def local_server(routes: dict[str, tuple[str, bytes]]) -> Iterator[str]:
    """A threaded HTTP server on a free local port serving `routes`; yields its base URL, with no trailing slash."""
    handler = type("Handler", (_Handler,), {"routes": dict(routes)})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def make_window(qtbot, settings):
    """The real main window, shown, its error dialogs recorded in window.errors instead of shown.

    Images are read at full size (downsample 1). With `qtbot`, the window is closed with the test;
    without (a window shared by a module), the caller closes it.
    """
    from hsviewer.gui.main_window import MainWindow

    w = MainWindow(settings)
    w.image_tab.downsample.setValue(1)
    w.errors = []
    w.show_error = w.errors.append
    w.show_load_error = w.errors.append  # a failed load's dialog, with its Choose model button
    if qtbot is not None:
        qtbot.addWidget(w)
    w.show()
    return w


def wait_job(qtbot, window, name: str, timeout: int = TIMEOUT_MS):
    """A blocker that waits for the window's job `name` to end."""
    return qtbot.waitSignal(window.job_done, timeout=timeout, check_params_cb=lambda done: done == name)


def drop(window, path) -> None:
    """What dropping a file on the window does."""
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dropEvent(event)


def hold_sweep(window, release: threading.Event | None = None) -> threading.Event:
    """Block the worker at the first sweep's first layer event until it is cancelled (or `release`).

    Returns an event set once the worker is held. A held worker gives up after HOLD_S.
    """
    from PySide6.QtCore import Qt

    from hsviewer.core.analyses.sweep.results import LayerDone

    held = threading.Event()

    def submitted(job):
        def hold(event):
            if isinstance(event, LayerDone) and event.done == 1 and not held.is_set():
                held.set()
                deadline = time.monotonic() + HOLD_S
                while not job.abort_requested and time.monotonic() < deadline:
                    if release is not None and release.wait(0.005):
                        return
                    time.sleep(0.005)

        if job.name == "sweep":
            job.yielded.connect(hold, Qt.ConnectionType.DirectConnection)

    window.job_submitted.connect(submitted)
    return held


def workers_of(window) -> tuple:
    """The window's worker objects, each running on a QThread of its own."""
    return (window.model_worker, window.image_worker)


def close_window(qtbot, window, timeout: int = TIMEOUT_MS) -> None:
    """Close the window and wait until each of its worker threads has finished."""
    window.close()
    qtbot.waitUntil(lambda: all(worker._thread.isFinished() for worker in workers_of(window)), timeout=timeout)


def visible_top_level_widgets() -> list:
    """The top-level widgets (windows, dialogs) now shown."""
    from PySide6.QtWidgets import QApplication

    return [w for w in QApplication.topLevelWidgets() if w.isVisible()]


def leaked_widgets(before, owned=()) -> list:
    """The visible top-level widgets that are neither in `before` nor `owned` (closed by someone else)."""
    known = {id(w) for w in before} | {id(w) for w in owned}  # both lists hold the wrappers: no id is reused
    return [w for w in visible_top_level_widgets() if id(w) not in known]


def describe_widgets(widgets) -> str:
    return ", ".join(f"{type(w).__name__}({w.windowTitle() or w.objectName()!r})" for w in widgets)


@contextlib.contextmanager
def xvfb_display() -> Iterator[str]:
    """A virtual X server on a free display number; yields its DISPLAY, e.g. ':5'."""
    import os
    import subprocess

    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not start")
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


def ctrl_c_at_the_second_text(monkeypatch) -> None:
    """`hsviewer sweep --texts` as if Ctrl+C came when its second text starts."""
    from hsviewer.commands import common
    from hsviewer.core.analyses.corpus.results import TextStarted

    printer = common.CorpusPrinter.__call__

    def interrupt_at_the_second_text(self, event):
        if isinstance(event, TextStarted) and event.index == 1:
            raise KeyboardInterrupt
        printer(self, event)

    monkeypatch.setattr(common.CorpusPrinter, "__call__", interrupt_at_the_second_text)


def kept_after_the_first_text(events):
    """What a consumer of corpus events keeps when it stops after the first text is done."""
    from hsviewer.core.analyses.corpus.results import CorpusCollector, TextDone

    collector = CorpusCollector()
    for event in events:
        collector.add(event)
        if isinstance(event, TextDone):
            events.close()
            break
    return collector.cancelled()


SIGTERM_WHEN = """
import os, signal, sys
from hsviewer import cli
from hsviewer.commands import common
from hsviewer.core.analyses.sweep.results import LayerDone

printer = common.ProgressPrinter.__call__

def terminate_when(self, event):
    printer(self, event)
    if {when}:
        os.kill(os.getpid(), signal.SIGTERM)

common.ProgressPrinter.__call__ = terminate_when
sys.exit(cli.main(sys.argv[1:]))
"""


def cli_terminated_when(args: list[str], when: str):
    """`hsviewer ARGS` in a process of its own that sends itself SIGTERM once a progress event
    makes `when` (an expression of `event`) true, as `timeout` or a batch scheduler would then."""
    import os
    import subprocess
    import sys

    script = SIGTERM_WHEN.format(when=when)
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=root,
        env={**os.environ, **CHILD_ENV},
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )
