"""Ctrl+C and SIGTERM in the app's terminal close the window, as its close button does.

Python runs a signal handler only between bytecodes of the main thread, and while Qt's event
loop waits in C++ no Python runs at all: Ctrl+C went unnoticed until some slot happened to run
Python, then raised KeyboardInterrupt inside it (pyqtgraph's garbage collector's timer, as
often as not), and SIGTERM ended the process without saving the settings. So each signal's
C-level handler writes to a socket (signal.set_wakeup_fd) that a QSocketNotifier watches: the
loop wakes, Python gets to run, and the Python handler asks the window to close.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Callable, Iterator
from types import FrameType

from PySide6.QtCore import QSocketNotifier, QTimer

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def close_on_signals(close: Callable[[], object]) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM call close() from the event loop; the old handlers after it."""
    reader, writer = socket.socketpair()
    for end in (reader, writer):
        end.setblocking(False)
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read)
    notifier.activated.connect(lambda *_: _drain(reader))  # Python runs here, and with it the handler

    def handle(signum: int, frame: FrameType | None) -> None:
        QTimer.singleShot(0, close)  # from the loop, not from inside whatever Python the signal interrupted

    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    previous = {s: signal.signal(s, handle) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        signal.set_wakeup_fd(previous_fd)
        notifier.setEnabled(False)
        reader.close()
        writer.close()


def _drain(reader: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while reader.recv(64):
            pass
