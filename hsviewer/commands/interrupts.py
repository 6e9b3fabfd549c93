"""SIGTERM as Ctrl+C: what `timeout`, systemd and batch schedulers send stops the CLI's work the same way.

Python turns Ctrl+C (SIGINT) into KeyboardInterrupt, so the commands' one path for it runs:
a corpus sweep writes the texts done, a sweep the layers done, a conversion removes its
half-built folder and an atomic write its temporary file. SIGTERM's default ends the process
on the spot instead, losing all of that; while a command runs, it raises KeyboardInterrupt too.
The exit code then says which signal it was, as a shell's does (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_received: list[int] = []  # the signal that stopped the command, when it was SIGTERM


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread; the old handler after it."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    _received.clear()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted_code() -> int:
    """The exit code of a command stopped by a signal: 128 plus its number."""
    return 128 + (_received[-1] if _received else signal.SIGINT)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise KeyboardInterrupt
