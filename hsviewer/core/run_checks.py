"""The checks a run file passes before anything is built from it: read from a regular file of bounded
size, its JSON not nested past what the parser can take, its result's fields of the types the result
classes declare, its names valid text, and its matrices (.npz) of the shapes its JSON implies, checked
from their headers before a byte of them is decompressed. A file from elsewhere (copied, edited,
damaged) is then one clear message instead of a crash, a hang or gigabytes of memory.

Each check raises DamagedRun with what is wrong; the library names the file.
"""

from __future__ import annotations

import json
import math
import os
import stat
import types
import zipfile
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import numpy as np

from hsviewer.core.corpus_results import CorpusResult
from hsviewer.core.hidden_results import ARRAY_SHAPES, HiddenReduction
from hsviewer.core.sweep_results import LayerResult, SweepResult

MAX_RUN_BYTES = 1 << 30  # a run's JSON: far above a 10,000-text corpus run
MAX_LAYERS = 100_000  # blocks in a model
MAX_INT = 1 << 63  # any whole number a result holds
MAX_HIDDEN = 1 << 20  # a hidden size, where the run's provenance does not give it
AGGREGATED = ("components", "components_percent", "loss_change", "kl")  # what show and compare read


class DamagedRun(ValueError):
    """What is wrong with a run file, as the end of 'NAME is damaged: ...'."""


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


def is_text(value: Any) -> bool:
    """A str that can be written out as UTF-8 (no lone surrogates, which JSON's \\ud800 escapes can make)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
        raise DamagedRun(f"its provenance's model is {_show(model)}, not a table")
    for key in ("n_layers", "hidden_size"):
        if model.get(key) is not None and not _is_int(model[key]):
            raise DamagedRun(f"its provenance's model {key} is {_show(model[key])}, not a whole number")
    files = model.get("files", [])
    if not isinstance(files, list):
        raise DamagedRun(f"its provenance's model files are {_show(files)}, not a list")
    for i, entry in enumerate(files):
        ok = isinstance(entry, dict) and is_text(entry.get("path")) and _is_int(entry.get("size"))
        if not ok or not is_text(entry.get("sha256")):
            raise DamagedRun(f"its provenance's model file {i + 1} is {_show(entry)}, not a path, size and sha256")
    for key in ("versions", "settings"):
        if not isinstance(provenance.get(key, {}), dict):
            raise DamagedRun(f"its provenance's {key} are {_show(provenance[key])}, not a table")


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


def check_sweep(data: dict[str, Any]) -> None:
    """A sweep's fields (and its layers' and controls') have the types SweepResult and LayerResult declare."""
    _check_sweep(data, "its result")


def check_reduce(data: dict[str, Any]) -> None:
    """A reduction's fields have the types HiddenReduction declares (its matrices: check_arrays)."""
    _check_reduce(data, "its result")


def check_corpus(data: dict[str, Any]) -> None:
    """A corpus run's fields, its texts' (as sweeps) and its aggregate's, as show and compare read them."""
    _check_corpus(data, "its result")


def _check_sweep(data: Any, where: str) -> None:
    _check_fields(SweepResult, data, where)
    _check_depth(data, where)
    layers = data.get("layers")
    if not isinstance(layers, list):
        raise DamagedRun(f"{where} has no list of layers")
    for i, layer in enumerate(layers):
        _check_fields(LayerResult, layer, f"{where}'s layer {i + 1}")
        _check_layer_index(layer["layer"], data["n_layers"], f"{where}'s layer {i + 1}")
    controls = data.get("controls") or {}
    if not isinstance(controls, dict):
        raise DamagedRun(f"{where}'s controls are {_show(controls)}, not a table")
    for name, control in controls.items():
        _check_sweep(control, f"{where}'s control {name!r}")


def _check_reduce(data: Any, where: str) -> None:
    _check_fields(HiddenReduction, data, where)
    _check_depth(data, where)
    _check_layer_index(data["layer"], data["n_layers"], where)
    for key in ("singular_values", "diff_norms"):
        if not isinstance(data.get(key), list):
            raise DamagedRun(f"{where}'s {key} are missing or not a list")


def _check_corpus(data: Any, where: str) -> None:
    _check_fields(CorpusResult, data, where)
    _check_depth(data, where)
    for key in ("texts", "notes"):
        if not isinstance(data.get(key), list):
            raise DamagedRun(f"{where}'s {key} are missing or not a list")
    for i, text in enumerate(data["texts"]):
        _check_sweep(text, f"{where}'s text {i + 1}")
    aggregate = data.get("aggregate")
    if not isinstance(aggregate, dict):
        raise DamagedRun(f"{where}'s aggregate is missing or not a table")
    controls = aggregate.get("controls", {})
    if not isinstance(controls, dict):
        raise DamagedRun(f"{where}'s aggregate controls are {_show(controls)}, not a table")
    for name, part in {"": aggregate, **controls}.items():
        rows = part.get("layers") if isinstance(part, dict) else None
        if not isinstance(rows, list):
            raise DamagedRun(f"{where}'s aggregate{' ' + name if name else ''} has no list of layers")
        for i, row in enumerate(rows):
            _check_aggregate_row(row, data["n_layers"], f"{where}'s aggregate layer {i + 1}")


def _check_aggregate_row(row: Any, n_layers: int, where: str) -> None:
    if not isinstance(row, dict):
        raise DamagedRun(f"{where} is {_show(row)}, not a table")
    _check_layer_index(row.get("layer"), n_layers, where)
    for name in AGGREGATED:
        mean, ci = row.get(f"{name}_mean"), row.get(f"{name}_ci95")
        if not _is_number(mean):
            raise DamagedRun(f"{where}'s {name}_mean is {_show(mean)}, not a number")
        if ci is not None and not (isinstance(ci, list) and len(ci) == 2 and all(_is_number(x) for x in ci)):
            raise DamagedRun(f"{where}'s {name}_ci95 is {_show(ci)}, not a pair of numbers")


def _check_depth(data: dict[str, Any], where: str) -> None:
    n = data["n_layers"]
    if not 1 <= n <= MAX_LAYERS:
        raise DamagedRun(f"{where}'s n_layers is {_show(n)}, not a number of blocks (1 to {MAX_LAYERS})")


def _check_layer_index(layer: Any, n_layers: int, where: str) -> None:
    if not _is_int(layer) or not 0 <= layer < n_layers:
        raise DamagedRun(f"{where}'s layer is {_show(layer)}, not a block of the model's {n_layers}")


def _check_fields(cls: type, data: Any, where: str) -> None:
    """Every field of `cls` that JSON holds as it is (numbers, text, flags, lists of them) is there
    with its declared type, when the class has no default for it."""
    if not isinstance(data, dict):
        raise DamagedRun(f"{where} is {_show(data)}, not a table")
    hints = get_type_hints(cls)
    for f in fields(cls):
        check = _checker(hints[f.name])
        if check is None:
            continue
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise DamagedRun(f"{where} has no {f.name!r}")
            continue
        if not check(data[f.name]):
            raise DamagedRun(f"{where}'s {f.name} is {_show(data[f.name])}, not {_describe(hints[f.name])}")


def _checker(hint: Any) -> Any:
    """A test for a value of this type hint, or None for a type JSON does not hold as it is."""
    plain = {int: _is_int, float: _is_number, str: is_text, bool: lambda v: isinstance(v, bool)}
    if hint in plain:
        return plain[hint]
    origin, args = get_origin(hint), get_args(hint)
    if origin is list and len(args) == 1 and args[0] in plain:
        item = plain[args[0]]
        return lambda v: isinstance(v, list) and all(item(x) for x in v)
    if origin in (Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner = _checker(rest[0]) if len(rest) == 1 else None
        return None if inner is None else (lambda v: v is None or inner(v))
    return None


def _describe(hint: Any) -> str:
    names = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}
    if hint in names:
        return names[hint]
    if get_origin(hint) is list:
        return f"a list of {names[get_args(hint)[0]].removeprefix('a ')}s"
    return "of its type or null"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -MAX_INT <= value <= MAX_INT


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


def _show(value: Any) -> str:
    """A value as the message quotes it: short, whatever it is."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return f"a number of {len(str(abs(value)))} digits"
    text = json.dumps(value, ensure_ascii=True) if isinstance(value, (str, int, float, bool, type(None))) else None
    if text is None:
        text = "a table" if isinstance(value, dict) else "a list" if isinstance(value, list) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."
