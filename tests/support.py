"""Shared set-up for the tests that need more than a fixture: a local HTTP server and the real main window."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from typing import ClassVar


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
    if qtbot is not None:
        qtbot.addWidget(w)
    w.show()
    return w
