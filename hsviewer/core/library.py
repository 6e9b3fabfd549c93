"""The runs library: every finished run saved by itself, to be listed, reopened and compared.

A run is one JSON file, {"format": "hsviewer-run", "version": 1, "kind", "id", "name",
"created", "provenance", "result"}, the result being the result's to_dict(); a kind whose
result holds matrices (a reduction's heatmaps) keeps them beside it in an .npz of the same
stem, written with the JSON as a pair (the JSON last, so a listed run has its matrices).
A kind plugs in with one entry in KINDS. Free of torch: the GUI thread lists and redraws runs.
"""

from __future__ import annotations

import json
import os
import secrets
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from hsviewer.core.corpus_results import CorpusResult
from hsviewer.core.errors import HsviewerError
from hsviewer.core.hidden_results import HiddenReduction
from hsviewer.core.sweep_results import SweepResult

FORMAT = "hsviewer-run"
VERSION = 1
DATA_DIR_ENV = "HSVIEWER_DATA_DIR"


@dataclass(frozen=True)
class Kind:
    """How a kind of result comes back from its to_dict (and matrices), and what the list calls its setting."""

    load: Callable[[dict[str, Any], dict[str, np.ndarray]], Any]
    arrays: bool = False  # whether it has an .npz beside its JSON


KINDS: dict[str, Kind] = {
    "sweep": Kind(lambda data, arrays: SweepResult.from_dict(data)),
    "reduce": Kind(HiddenReduction.from_dict, arrays=True),
    "corpus": Kind(lambda data, arrays: CorpusResult.from_dict(data)),
}


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
    path: Path

    @property
    def when(self) -> str:
        """The time saved, to the minute: '2026-01-31 14:05'."""
        return self.created.replace("T", " ")[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "model": self.model,
            "setting": self.setting,
            "created": self.created,
            "path": str(self.path),
        }


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
            return KINDS[self.info.kind].load(self.data, self.arrays)
        except (KeyError, TypeError, ValueError, HsviewerError) as e:
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
        from hsviewer.export import json_writer, write_all

        now = datetime.now().astimezone()
        run_id = f"{now:%Y%m%d-%H%M%S}-{kind}-{secrets.token_hex(2)}"
        data = result.to_dict()
        info = RunInfo(
            id=run_id,
            name=name or default_name(kind, data),
            kind=kind,
            model=str(data.get("model", "")),
            setting=setting_label(data),
            created=now.isoformat(timespec="seconds"),
            path=self.folder / f"{run_id}.json",
        )
        run = Run(info=info, provenance=provenance, data=data)
        writes: list[tuple[Path, Callable[[Path], None]]] = []
        if KINDS[kind].arrays:
            writes.append((_arrays_path(info.path), _npz_writer(result.arrays())))
        writes.append((info.path, json_writer(run.envelope())))
        write_all(writes)
        return info

    def list(self) -> Listing:
        runs, problems = [], []
        paths = sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []
        for path in paths:
            try:
                runs.append(read_info(path))
            except RunFileError as e:
                problems.append(str(e))
        runs.sort(key=lambda r: (r.created, r.id), reverse=True)
        return Listing(runs=runs, problems=problems)

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
        from hsviewer.export import write_json

        name = name.strip()
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
    arrays: dict[str, np.ndarray] = {}
    if KINDS[info.kind].arrays:
        arrays = _read_arrays(_arrays_path(path))
    provenance = envelope.get("provenance") or {}
    if not isinstance(provenance, dict):
        raise RunFileError(f"{path.name} is damaged: its provenance is not a table.")
    return Run(info=info, provenance=provenance, data=envelope["result"], arrays=arrays)


def default_name(kind: str, data: dict[str, Any]) -> str:
    layer = f" layer {data['layer']}" if kind == "reduce" and "layer" in data else ""
    source = f" {Path(str(data['source'])).name}" if kind == "corpus" and data.get("source") else ""
    return f"{kind} {data.get('model', '')}{layer}{source} {setting_label(data)}"


def setting_label(data: dict[str, Any]) -> str:
    """The threshold or k the result reduced with, as the tabs label it, then what else it holds, so that
    two runs differing in those read differently: '95%', 'k = 8', '95%, grid of 4, 3 controls',
    '95%, 3 texts, 1 control'."""
    if data.get("fixed_components") is not None:
        parts = [f"k = {data['fixed_components']}"]
    else:
        threshold = data.get("threshold")
        parts = [f"{threshold:g}%" if isinstance(threshold, (int, float)) else ""]
    grid = data.get("grid")
    if isinstance(grid, dict) and isinstance(grid.get("settings"), list) and grid["settings"]:
        parts.append(f"grid of {len(grid['settings'])}")
    if data.get("kind") == "corpus" and isinstance(data.get("texts"), list):
        parts.append(_count(len(data["texts"]), "text"))
    if isinstance(data.get("controls"), (dict, list)) and data["controls"]:
        parts.append(_count(len(data["controls"]), "control"))
    return ", ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _read_envelope(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RunFileError(f"{path.name} is not a hsviewer run: it is not UTF-8 text.") from None
    except OSError as e:
        raise RunFileError(f"Could not read {path}: {e.strerror or e}.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RunFileError(f"{path.name} is damaged: not valid JSON ({e.msg}, line {e.lineno}).") from None
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
    if data["kind"] not in KINDS:
        raise RunFileError(
            f"{path.name} holds a {data['kind']!r} run, which this version cannot show (it reads {', '.join(KINDS)})."
        )
    return data


PLAIN_KEYS = {"sweep": {"layers", "n_layers", "clean_loss", "tokens"}, "corpus": {"texts", "aggregate", "n_layers"}}


def _plain_kind(data: dict[str, Any]) -> str | None:
    """The kind of a result's own JSON (hsviewer sweep --out, with or without --texts), or None."""
    kind = data.get("kind", "sweep")
    return kind if kind in PLAIN_KEYS and PLAIN_KEYS[kind] <= set(data) else None


def _wrap_plain(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    created = datetime.fromtimestamp(path.stat().st_mtime).astimezone().isoformat(timespec="seconds")
    return {"kind": _plain_kind(data), "id": path.stem, "name": path.stem, "created": created, "result": data}


def _info(path: Path, data: dict[str, Any]) -> RunInfo:
    result = data["result"]
    return RunInfo(
        id=data["id"],
        name=data["name"],
        kind=data["kind"],
        model=str(result.get("model", "")),
        setting=setting_label(result),
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


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise RunFileError(
            f"{path.with_suffix('.json').name} is damaged: its matrices file {path.name} is missing."
        ) from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise RunFileError(f"{path.name} is damaged: its matrices cannot be read ({_reason(e)}).") from None


def _reason(error: BaseException) -> str:
    if isinstance(error, KeyError):
        return f"{error.args[0]!r} is missing"
    return str(error) or type(error).__name__
