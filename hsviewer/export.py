"""Files written whole or not at all: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from hsviewer.core.errors import HsviewerError

SWEEP_FIELDS = ("layer", "components", "variance_kept", "hidden_diff_norm", "logit_diff_norm", "loss", "kl_divergence")


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on a temporary sibling of path, then rename it over path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; an export should be an ordinary file
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None:  # a failed write (a full disk) names no file: name the one being written
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    return write_text(path, json.dumps(data, indent=1, allow_nan=True) + "\n")


def write_csv(path: str | Path, rows: Iterable[Sequence[Any]]) -> Path:
    """Rows (the first one the header) as CSV."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return write_text(path, buffer.getvalue())


def export_suffix(path: str | Path, allowed: Sequence[str], what: str) -> str:
    """The path's suffix, or a plain error naming the ones `what` is exported as."""
    suffix = Path(path).suffix.lower()
    if suffix not in allowed:
        raise HsviewerError(f"{what} is exported as {' or '.join(allowed)}, not {suffix or 'a file without a suffix'}.")
    return suffix


@contextmanager
def plain_write_errors(path: str | Path) -> Iterator[None]:
    """An OSError while writing path becomes one message for the user."""
    try:
        yield
    except OSError as e:
        raise HsviewerError(f"Could not write {path}: {e.strerror or e}.") from None


def write_data(path: str | Path, result: Any, rows: list[list[Any]]) -> Path:
    """result.to_dict() as .json, or the rows as .csv, by the path's suffix."""
    suffix = export_suffix(path, (".json", ".csv"), "Data")
    with plain_write_errors(path):
        return write_json(path, result.to_dict()) if suffix == ".json" else write_csv(path, rows)


def image_rows(svd: Any) -> list[list[Any]]:
    """One row per component: its singular value and the cumulative percent of variance."""
    rows: list[list[Any]] = [["component", "singular_value", "cumulative_percent"]]
    rows += [[i + 1, float(s), float(c)] for i, (s, c) in enumerate(zip(svd.s, svd.cumulative_percent, strict=True))]
    return rows


def hidden_rows(result: Any) -> list[list[Any]]:
    """One row per layer: the norm of the difference with the reduction applied at result.layer."""
    rows: list[list[Any]] = [["layer", "diff_norm", "reduced_layer"]]
    rows += [[i, float(n), int(i == result.layer)] for i, n in enumerate(result.diff_norms)]
    return rows


def sweep_rows(result: Any) -> list[list[Any]]:
    """One row per run and layer ("main" is the plain sweep), with the grid's losses as extra columns."""
    grid = [f"loss_{g.label()}" for g in result.grid]
    rows: list[list[Any]] = [["run", *SWEEP_FIELDS, *grid]]
    for run, sweep in [("", result), *result.controls.items()]:
        for layer in sweep.layers:
            values = [getattr(layer, name) for name in SWEEP_FIELDS]
            losses = layer.grid_loss if run == "" else []
            rows.append([run or "main", *values, *losses, *[""] * (len(grid) - len(losses))])
    return rows


def write_gray_png(path: str | Path, array: np.ndarray) -> Path:
    """A matrix as an 8-bit grayscale PNG, clipped to 0..255 like the image it came from."""
    from PIL import Image

    pixels = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return write_atomic(path, lambda tmp: Image.fromarray(pixels, mode="L").save(tmp, format="PNG"))
