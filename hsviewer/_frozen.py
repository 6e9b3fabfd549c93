"""Make a windowed (console=False) build safe to log and print from.

A windowed PyInstaller app on Windows and macOS starts with sys.stdout and sys.stderr
set to None; transformers' logging, tqdm progress bars and print() then raise. They
get a log file in the user log directory instead (os.devnull if it cannot be opened).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

LOG_NAME = "hsviewer.log"


def fix_std_streams() -> None:
    """Replace a missing stdout or stderr; real streams (a terminal, a pipe) are left alone."""
    if sys.stdout is not None and sys.stderr is not None:
        return
    stream = _log_stream()
    if sys.stdout is None:
        sys.stdout = stream
    if sys.stderr is None:
        sys.stderr = stream


def _log_stream() -> TextIO:
    """The user log file, appended to and line-buffered so a crash still leaves its lines."""
    try:
        import platformdirs

        folder = Path(platformdirs.user_log_dir("hsviewer", appauthor=False))
        folder.mkdir(parents=True, exist_ok=True)
        return open(folder / LOG_NAME, "a", encoding="utf-8", buffering=1)
    except OSError:
        return open(os.devnull, "w", encoding="utf-8")
