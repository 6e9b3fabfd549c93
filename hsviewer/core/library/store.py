"""The runs library: every finished run saved by itself, to be listed, reopened and compared.

A run is one JSON file, {"format": "hsviewer-run", "version": 1, "kind", "id", "name",
"created", "provenance", "result"}, the result being the result's to_dict(); a kind whose
result holds matrices (a reduction's heatmaps) keeps them beside it in an .npz of the same
stem, written with the JSON as a pair (the JSON last, so a listed run has its matrices).
A kind plugs in through its AnalysisKind (core.analyses.registry). Free of torch: the GUI thread lists and redraws runs.

A save stages both files under dot-names ending in .tmp (never listed), then links each to its
final name, which fails if that name exists: an id is never reused, a run never overwritten. A
save killed half-way leaves dot-files (and perhaps a matrices file without its JSON), removed by
the next listing once they are older than any save takes. A run file is checked (library.checks and
its kind's check) before anything is built from it.
"""

from __future__ import annotations

import errno
import os
import secrets
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from json import JSONDecodeError
from pathlib import Path
from typing import Any

import numpy as np

from hsviewer.core import fields
from hsviewer.core.analyses.reduce.results import ARRAY_SHAPES
from hsviewer.core.analyses.registry import SAVED
from hsviewer.core.errors import HsviewerError
from hsviewer.core.library.checks import (
    DamagedRun,
    as_text,
    check_arrays,
    check_provenance,
    is_text,
    read_json,
)

FORMAT = "hsviewer-run"
VERSION = 1
DATA_DIR_ENV = "HSVIEWER_DATA_DIR"
STAGED_SUFFIX = ".tmp"
LEFTOVER_SECONDS = 15 * 60  # a save's dot-files older than this are a killed save's leftovers
NEW_ID_TRIES = 100


class RunFileError(HsviewerError):
    """A run file that cannot be read: damaged, not a run, or from a newer hsviewer."""


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """One saved run as the list shows it."""

    id: str
    name: str
    kind: str
    model: str
    setting: str  # the threshold (or k) it reduced with; a corpus run's number of texts too
    created: str  # ISO 8601, local time with its offset
    path: Path = field(metadata={fields.ENCODE: str})

    @property
    def when(self) -> str:
        """The time saved, to the minute: '2026-01-31 14:05'."""
        return self.created.replace("T", " ")[:16]

    def to_dict(self) -> dict[str, Any]:
        return fields.to_dict(self)


@dataclass(kw_only=True)
class Run:
    """A saved run read back: what the list shows, how it was made, and its result's data."""

    info: RunInfo
    provenance: dict[str, Any]
    data: dict[str, Any]  # the result's to_dict()
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def result(self) -> Any:
        """The result object itself (a SweepResult, a HiddenReduction), as the GUI draws it."""
        try:
            return SAVED[self.info.kind].load(self.data, self.arrays)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, HsviewerError) as e:
            raise RunFileError(f"{self.info.path.name} is damaged: its result cannot be read ({_reason(e)}).") from None

    def hidden_size(self) -> int | None:
        size = self.provenance.get("model", {}).get("hidden_size")
        return int(size) if isinstance(size, int) else None

    def envelope(self) -> dict[str, Any]:
        """The run's JSON, as saved."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.info.kind,
            "id": self.info.id,
            "name": self.info.name,
            "created": self.info.created,
            "provenance": self.provenance,
            "result": self.data,
        }


@dataclass(frozen=True, kw_only=True)
class Saved:
    """Event: a finished run was saved to the library (before the work's Finished)."""

    info: RunInfo


@dataclass(frozen=True, kw_only=True)
class SaveFailed:
    """Event: a finished run could not be saved to the library (the work's Finished still follows)."""

    message: str


@dataclass(kw_only=True)
class Listing:
    """The runs of a library, newest first, and one line for each file that could not be read."""

    runs: list[RunInfo]
    problems: list[str]


def default_folder() -> Path:
    """HSVIEWER_DATA_DIR/runs, else the platform's user data folder's hsviewer/runs."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]) / "runs"
    import platformdirs

    return Path(platformdirs.user_data_dir("hsviewer", appauthor=False)) / "runs"


class Library:
    """The runs saved in one folder."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_folder()

    def save(self, kind: str, result: Any, provenance: dict[str, Any], name: str | None = None) -> RunInfo:
        """Write the run (and its matrices) whole or not at all; its id is new, its name the given one or made up."""
        from hsviewer.core.library.writing import json_writer

        now = datetime.now().astimezone()
        data = result.to_dict()
        name = _valid_name(name) if name else as_text(SAVED[kind].default_name(data))
        self.folder.mkdir(parents=True, exist_ok=True)
        staged: list[Path] = []
        try:
            arrays = (
                _stage(self.folder, "arrays.npz", _npz_writer(result.arrays()), staged) if SAVED[kind].arrays else None
            )
            for _ in range(NEW_ID_TRIES):
                run_id = f"{now:%Y%m%d-%H%M%S}-{kind}-{secrets.token_hex(2)}"
                info = RunInfo(
                    id=run_id,
                    name=name,
                    kind=kind,
                    model=str(data.get("model", "")),
                    setting=SAVED[kind].setting(data),
                    created=now.isoformat(timespec="seconds"),
                    path=self.folder / f"{run_id}.json",
                )
                envelope = Run(info=info, provenance=provenance, data=data).envelope()
                staged_json = _stage(self.folder, info.path.name, json_writer(envelope), staged)
                if _place_pair(staged_json, info.path, arrays):
                    return info
        finally:
            for path in staged:
                path.unlink(missing_ok=True)
        raise OSError(errno.EEXIST, f"No free run id after {NEW_ID_TRIES} tries", str(self.folder))

    def list(self) -> Listing:
        """Every run file (never a save's dot-files), read one by one: a bad one is a problem, never the end."""
        runs, problems = [], []
        self.remove_leftovers()
        paths = (
            sorted(p for p in self.folder.glob("*.json") if not p.name.startswith(".")) if self.folder.is_dir() else []
        )
        for path in paths:
            try:
                runs.append(read_info(path))
            except RunFileError as e:
                problems.append(str(e))
        runs.sort(key=lambda r: (r.created, r.id), reverse=True)
        return Listing(runs=runs, problems=problems)

    def remove_leftovers(self, age: float = LEFTOVER_SECONDS) -> None:
        """Remove what killed saves left, older than `age` seconds: staged dot-files, and matrices
        files without their JSON (a save links the matrices first, a delete removes them last)."""
        if not self.folder.is_dir():
            return
        old = time.time() - age
        leftovers = [p for p in self.folder.glob(".*.json.*") if p.suffix in (".json", STAGED_SUFFIX)]
        leftovers += [p for p in self.folder.glob(".*.npz.*") if p.suffix in (".npz", STAGED_SUFFIX)]
        leftovers += [
            p for p in self.folder.glob("*.npz") if not p.name.startswith(".") and not p.with_suffix(".json").exists()
        ]
        for path in leftovers:
            try:
                if path.lstat().st_mtime < old:
                    path.unlink()
            except OSError:  # gone already, or a folder we cannot write: the listing goes on
                continue

    def find(self, ref: str) -> RunInfo:
        """The run with this id, this name, or the only id that starts with it."""
        runs = self.list().runs
        for matches in (
            [r for r in runs if r.id == ref],
            [r for r in runs if r.name == ref],
            [r for r in runs if r.id.startswith(ref)],
        ):
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise HsviewerError(f"{len(matches)} runs are called {ref!r}: give the id (hsviewer runs list).")
        raise HsviewerError(f"No run called {ref!r} in {self.folder} (hsviewer runs list shows them).")

    def load(self, ref: str | RunInfo) -> Run:
        info = ref if isinstance(ref, RunInfo) else self.find(ref)
        return read_run(info.path)

    def latest(self, kind: str, runs: Sequence[RunInfo] | None = None) -> Run | None:
        """The newest run of a kind that reads whole, or None; `runs`: a listing already read, newest first."""
        for info in self.list().runs if runs is None else runs:
            if info.kind == kind:
                try:
                    run = read_run(info.path)
                    run.result()
                    return run
                except RunFileError:
                    continue
        return None

    def rename(self, ref: str | RunInfo, name: str) -> RunInfo:
        from hsviewer.core.library.writing import write_json

        name = _valid_name(name.strip())
        if not name:
            raise HsviewerError("A run's name cannot be empty.")
        run = self.load(ref)
        run.info = replace(run.info, name=name)
        write_json(run.info.path, run.envelope())
        return run.info

    def delete(self, ref: str | RunInfo) -> None:
        """Remove the run's JSON, then its matrices."""
        info = ref if isinstance(ref, RunInfo) else self.find(ref)
        info.path.unlink(missing_ok=True)
        _arrays_path(info.path).unlink(missing_ok=True)


def read_info(path: Path) -> RunInfo:
    """What the list shows of a run file, from its JSON alone."""
    return _info(path, _read_envelope(path))


def read_run(path: str | Path) -> Run:
    """A run file, or a sweep's plain JSON (hsviewer sweep --out), read whole; a RunFileError saying why not."""
    path = Path(path)
    envelope = _read_envelope(path)
    info = _info(path, envelope)
    provenance = envelope.get("provenance") or {}
    if not isinstance(provenance, dict):
        raise RunFileError(f"{path.name} is damaged: its provenance is not a table.")
    try:
        check_provenance(provenance)
        SAVED[info.kind].check(envelope["result"])
    except DamagedRun as e:
        raise RunFileError(f"{path.name} is damaged: {e}.") from None
    run = Run(info=info, provenance=provenance, data=envelope["result"])
    if SAVED[info.kind].arrays:
        run.arrays = _read_arrays(_arrays_path(path), run.data, run.hidden_size())
    return run


def _read_envelope(path: Path) -> dict[str, Any]:
    try:
        data = read_json(path)
    except UnicodeDecodeError:
        raise RunFileError(f"{path.name} is not a hsviewer run: it is not UTF-8 text.") from None
    except OSError as e:
        raise RunFileError(f"Could not read {path}: {e.strerror or e}.") from None
    except DamagedRun as e:
        raise RunFileError(f"{path.name} is not a hsviewer run: {e}.") from None
    except JSONDecodeError as e:
        raise RunFileError(f"{path.name} is damaged: not valid JSON ({e.msg}, line {e.lineno}).") from None
    except ValueError as e:  # a number of more digits than Python converts
        raise RunFileError(f"{path.name} is damaged: not valid JSON ({e}).") from None
    if isinstance(data, dict) and "format" not in data and _plain_kind(data):
        return _wrap_plain(path, data)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RunFileError(f"{path.name} is not a hsviewer run (nor a sweep's JSON).")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise RunFileError(f"{path.name} is damaged: its format version is {version!r}.")
    if version > VERSION:
        raise RunFileError(
            f"{path.name}: this run was saved by a newer hsviewer (format {version}); "
            f"this version reads format {VERSION}."
        )
    for key, kind in (("kind", str), ("id", str), ("name", str), ("created", str), ("result", dict)):
        if not isinstance(data.get(key), kind):
            raise RunFileError(f"{path.name} is damaged: its {key} is missing or not a {kind.__name__}.")
    for key in ("kind", "id", "name", "created"):
        if not is_text(data[key]):
            raise RunFileError(f"{path.name} is damaged: its {key} is not valid text (it holds a lone surrogate).")
    if data["kind"] not in SAVED:
        raise RunFileError(
            f"{path.name} holds a {data['kind']!r} run, which this version cannot show (it reads {', '.join(SAVED)})."
        )
    return data


def _plain_kind(data: dict[str, Any]) -> str | None:
    """The kind of a result's own JSON (hsviewer sweep --out, with or without --texts), or None."""
    kind = SAVED.get(data.get("kind", "sweep"))
    return kind.name if kind is not None and kind.plain_keys and kind.plain_keys <= set(data) else None


def _wrap_plain(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    created = datetime.fromtimestamp(path.stat().st_mtime).astimezone().isoformat(timespec="seconds")
    stem = as_text(path.stem)  # a file name of other bytes than UTF-8
    return {"kind": _plain_kind(data), "id": stem, "name": stem, "created": created, "result": data}


def _info(path: Path, data: dict[str, Any]) -> RunInfo:
    result = data["result"]
    return RunInfo(
        id=data["id"],
        name=data["name"],
        kind=data["kind"],
        model=as_text(str(result.get("model", ""))),  # a model folder's name of other bytes than UTF-8
        setting=SAVED[data["kind"]].setting(result),
        created=data["created"],
        path=path,
    )


def _arrays_path(path: Path) -> Path:
    return path.with_suffix(".npz")


def _npz_writer(arrays: dict[str, np.ndarray]) -> Callable[[Path], None]:
    named: dict[str, Any] = dict(arrays)  # numpy's stubs type **kwds as its bool option

    def write(path: Path) -> None:
        with path.open("wb") as f:
            np.savez_compressed(f, **named)

    return write


def _valid_name(name: str) -> str:
    """The name, if it is text that can be saved (no lone surrogates); else one message."""
    if not is_text(name):
        raise HsviewerError(
            f"A run's name must be valid text: {name.encode('utf-8', 'backslashreplace').decode()!r} is not."
        )
    return name


def _stage(folder: Path, name: str, write: Callable[[Path], None], staged: list[Path]) -> Path:
    """write() into a new dot-file of the folder, never named like a run file; kept in `staged` to be removed."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=STAGED_SUFFIX, dir=folder)
    os.close(fd)
    path = Path(tmp)
    staged.append(path)
    os.chmod(path, 0o666 & ~_umask())  # mkstemp makes it private; a run file is an ordinary file
    write(path)
    return path


def _place_pair(staged_json: Path, target: Path, staged_arrays: Path | None) -> bool:
    """The matrices, then the JSON, placed at names that must not exist yet; False (nothing placed) when one does."""
    if staged_arrays is not None and not _place_new(staged_arrays, _arrays_path(target)):
        return False
    if not _place_new(staged_json, target):
        if staged_arrays is not None:  # placed a moment ago by this save: staged again for the next id
            os.replace(_arrays_path(target), staged_arrays)
        return False
    return True


def _place_new(staged: Path, target: Path) -> bool:
    """Give the staged file the target's name only if no file has it (False if one does), atomically:
    a hard link, or where the file system has none, the name taken with O_EXCL and then replaced."""
    try:
        os.link(staged, target)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EACCES):
            raise
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        return False
    os.replace(staged, target)  # over the empty file this save just created
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _read_arrays(path: Path, data: dict[str, Any], hidden_size: int | None) -> dict[str, np.ndarray]:
    """The matrices, once their headers say they fit the run (no decompressing of what does not)."""
    try:
        check_arrays(path, data, hidden_size)
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in ARRAY_SHAPES}  # only those checked, whatever else it holds
    except FileNotFoundError:
        raise RunFileError(
            f"{path.with_suffix('.json').name} is damaged: its matrices file {path.name} is missing."
        ) from None
    except DamagedRun as e:
        raise RunFileError(f"{path.name} is damaged: {e}.") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise RunFileError(f"{path.name} is damaged: its matrices cannot be read ({_reason(e)}).") from None


def _reason(error: BaseException) -> str:
    if isinstance(error, KeyError):
        return f"{error.args[0]!r} is missing"
    return str(error) or type(error).__name__
