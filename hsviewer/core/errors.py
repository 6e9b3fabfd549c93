"""Errors a user can act on, and the one translation of any exception into their words.

The command line prints these messages on one line; the app's jobs carry the exception and
show the same message. An exception with no user message is a bug: its traceback goes to the log.
"""

from __future__ import annotations

import re
import sys


class HsviewerError(Exception):
    """Bad input or an unusable model: the message is shown as is, without a traceback."""


def user_message(error: BaseException) -> str | None:
    """The line a user is shown for an error they can act on; None for a bug."""
    if isinstance(error, HsviewerError):
        return str(error)
    if isinstance(error, OSError):  # a file in the way that no check foresaw
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}."
    return out_of_memory(error)


def failure_message(error: BaseException, doing: str) -> str:
    """user_message, or for a bug what failed and how, so that a report can quote it."""
    return user_message(error) or f"Unexpected error in {doing}: {type(error).__name__}: {error}"


def out_of_memory(error: BaseException) -> str | None:
    """One line for an allocation that failed (MemoryError, torch's OutOfMemoryError, a
    CPU allocator's RuntimeError), saying how much was asked for when the error says; else None."""
    text = str(error)
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    allocator = isinstance(error, RuntimeError) and re.search(r"can't allocate memory|out of memory", text, re.I)
    if not (isinstance(error, MemoryError) or (oom is not None and isinstance(error, oom)) or allocator):
        return None
    asked = re.search(r"tried to allocate ([\d.]+)\s*(bytes|[KMGT]i?B)", text, re.I)
    size = ""
    if asked:
        amount, unit = asked.groups()
        size = f" ({_binary_size(int(amount))} asked for)" if unit == "bytes" else f" ({amount} {unit} asked for)"
    return f"Out of memory{size}: try a shorter text, a smaller model or another device."


def _binary_size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


class StreamStopped(Exception):
    """A streamed pass (core/streaming.py) stopped at its next module's read because a cancel was asked for."""
