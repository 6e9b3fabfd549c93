"""The checks a run file passes before anything is built from it: read from a regular file of bounded
size, its JSON not nested past what the parser can take, its provenance in the form `runs show` prints,
and its matrices (.npz) of the shapes its JSON implies, checked from their headers before a byte of them
is decompressed. A file from elsewhere (copied, edited, damaged) is then one clear message instead of a
crash, a hang or gigabytes of memory. The result's own fields are its kind's check (AnalysisKind.check).

Each check raises DamagedRun with what is wrong; the library names the file.
"""

from __future__ import annotations

import json
import math
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from hsviewer.core.analyses.checks import DamagedRun, is_int, is_text, show
from hsviewer.core.analyses.reduce.results import ARRAY_SHAPES

MAX_RUN_BYTES = 1 << 30  # a run's JSON: far above a 10,000-text corpus run
MAX_HIDDEN = 1 << 20  # a hidden size, where the run's provenance does not give it

__all__ = ["DamagedRun", "as_text", "check_arrays", "check_provenance", "is_text", "read_json"]


def read_json(path: Path, limit: int = MAX_RUN_BYTES) -> Any:
    """The JSON in a regular file of at most `limit` bytes, read without blocking (a FIFO or a device
    named *.json is refused, never waited on). OSError, UnicodeDecodeError and DamagedRun as they come."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DamagedRun("it is not a regular file")
        if info.st_size > limit:
            raise DamagedRun(f"it is {info.st_size / 2**30:.1f} GB, more than a run holds ({limit / 2**30:.0f} GB)")
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise DamagedRun(f"it grew past {limit / 2**30:.0f} GB while being read")
    text = raw.decode("utf-8")
    try:
        return json.loads(text)
    except RecursionError:
        raise DamagedRun("its JSON is nested too deeply to be a run") from None


def as_text(value: str) -> str:
    """The str as valid text: bytes a file name smuggled in (surrogate escapes) decoded, lone surrogates U+FFFD."""
    if is_text(value):
        return value
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # lone surrogates that are no escaped bytes
        return value.encode("utf-8", "replace").decode("utf-8")


def check_provenance(provenance: dict[str, Any]) -> None:
    """What `runs show` prints of a run's provenance is there in the form it prints."""
    model = provenance.get("model", {})
    if not isinstance(model, dict):
        raise DamagedRun(f"its provenance's model is {show(model)}, not a table")
    for key in ("n_layers", "hidden_size"):
        if model.get(key) is not None and not is_int(model[key]):
            raise DamagedRun(f"its provenance's model {key} is {show(model[key])}, not a whole number")
    files = model.get("files", [])
    if not isinstance(files, list):
        raise DamagedRun(f"its provenance's model files are {show(files)}, not a list")
    for i, entry in enumerate(files):
        ok = isinstance(entry, dict) and is_text(entry.get("path")) and is_int(entry.get("size"))
        if not ok or not is_text(entry.get("sha256")):
            raise DamagedRun(f"its provenance's model file {i + 1} is {show(entry)}, not a path, size and sha256")
    for key in ("versions", "settings"):
        if not isinstance(provenance.get(key, {}), dict):
            raise DamagedRun(f"its provenance's {key} are {show(provenance[key])}, not a table")


def check_arrays(path: Path, data: dict[str, Any], hidden_size: int | None) -> None:
    """Each matrix in the .npz has the shape the run's JSON implies (HiddenReduction.ARRAY_SHAPES), a
    plain numeric type, and a stored size that matches, all read from the headers before any data."""
    sizes = {
        "tokens": len(data["tokens"]),
        "rank": len(data["singular_values"]),
        "blocks": len(data["diff_norms"]),
        "hidden": hidden_size,
    }
    with zipfile.ZipFile(path) as archive:
        for name, dims in ARRAY_SHAPES.items():
            try:
                member = archive.getinfo(f"{name}.npy")
            except KeyError:
                raise DamagedRun(f"its matrix {name!r} is missing") from None
            with archive.open(member) as f:
                version = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else None
                if version == (2, 0):
                    read_header = np.lib.format.read_array_header_2_0
                if read_header is None:
                    raise DamagedRun(f"its matrix {name!r} is in an unknown format {version}")
                shape, _, dtype = read_header(f)
                header = f.tell()
            _check_member(name, dims, shape, dtype, member.file_size - header, sizes)


def _check_member(
    name: str, dims: tuple[str, ...], shape: tuple[int, ...], dtype: np.dtype, stored: int, sizes: dict[str, Any]
) -> None:
    if dtype.hasobject or dtype.kind not in "biuf":
        raise DamagedRun(f"its matrix {name!r} holds {dtype}, not numbers")
    if len(shape) != len(dims):
        raise DamagedRun(f"its matrix {name!r} has shape {shape}, not {len(dims)} dimension(s)")
    for size, dim in zip(shape, dims, strict=True):
        known = sizes.get(dim)
        if dim == "rows":  # the rows the basis was built from: the tokens, less the first under exclude_first
            fits = 0 <= size <= sizes["tokens"]
        elif known is None:  # the hidden size, not recorded: the same in every matrix, and plausible
            fits = 0 <= size <= MAX_HIDDEN
            sizes[dim] = size if fits else None
        else:
            fits = size == known
        if not fits:
            raise DamagedRun(f"its matrix {name!r} has shape {shape}, which does not fit the run ({dim} {known})")
    if stored != math.prod(shape) * dtype.itemsize:
        raise DamagedRun(f"its matrix {name!r} holds {stored} bytes where its shape {shape} takes a different size")
