"""Reading the small files a listing opens (manifests, config.json, indexes) without trusting them."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from hsviewer.core.model.discovery.units import human_bytes


def read_json(path: Path, limit: int, what: str) -> Any:
    """A small JSON file of at most `limit` bytes, parsed; ValueError when it is not one.

    A regular file only (a named pipe would block), its size checked before anything is read,
    and nesting too deep for the parser (RecursionError) reported as damage like any other.
    """
    with path.open("rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path.name} is {human_bytes(info.st_size)}, too large for {what}")
        data = f.read(limit + 1)
    return loads(data, path.name)


def loads(data: str | bytes, name: str) -> Any:
    """json.loads, with nesting too deep to parse a ValueError like any other damage."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError(f"{name} is nested too deeply to be read") from None


def file_size(path: Path) -> int:
    """The file's size in bytes; 0 when it cannot be read (a broken link), which a listing shows as no size."""
    try:
        return path.stat().st_size
    except OSError:
        return 0
