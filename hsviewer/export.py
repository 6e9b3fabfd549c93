"""Files written whole or not at all: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on a temporary sibling of path, then rename it over path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    return write_text(path, json.dumps(data, indent=1, allow_nan=True) + "\n")


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())


def sweep_csv_rows(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """One row per layer of a sweep's JSON dict (token differences left to the JSON)."""
    header = ["layer", "components", "variance_kept", "hidden_diff_norm", "logit_diff_norm", "loss", "kl_divergence"]
    return header, [[layer.get(key) for key in header] for layer in result["layers"]]


def write_gray_png(path: str | Path, array: np.ndarray) -> Path:
    """A matrix as an 8-bit grayscale PNG, clipped to 0..255 like the image it came from."""
    from PIL import Image

    pixels = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return write_atomic(path, lambda tmp: Image.fromarray(pixels, mode="L").save(tmp, format="PNG"))
