"""Where a run came from: the model and a hash of its files, precision, device, settings,
texts, versions and time; and the wrapper that saves a finished run to the library.

Runs on the worker (or the command line), after the work: hashing a model's files reads
them whole, so each file's hash is kept by (path, size, mtime) and read only once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Generator, Iterable
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hsviewer.core.events import Finished
from hsviewer.core.library.store import Library, RunInfo, Saved, SaveFailed

if TYPE_CHECKING:
    from hsviewer.core.model.loading import ModelHandle

log = logging.getLogger(__name__)

HASHES_FILE = "file-hashes.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
CHUNK = 1 << 22


def provenance(
    handle: ModelHandle, *, settings: dict[str, Any], texts: list[str], world_size: int = 1
) -> dict[str, Any]:
    """What a run needs to be told apart and repeated; world_size: the processes that computed it."""
    return {
        "model": {
            "name": handle.name,
            "source": handle.source,
            "n_layers": handle.n_layers,
            "hidden_size": handle.hidden_size,
            "files": [
                {"path": str(p), "size": p.stat().st_size, "sha256": file_sha256(p)} for p in model_files(handle)
            ],
        },
        "dtype": handle.dtype,
        "device": str(handle.device),
        "world_size": world_size,
        "settings": settings,
        "texts": texts,
        "versions": versions(),
        "time": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def versions() -> dict[str, str | None]:
    """hsviewer's, torch's and transformers' versions, from their metadata (torch is not imported)."""
    import hsviewer

    found: dict[str, str | None] = {"hsviewer": hsviewer.__version__}
    for name in ("torch", "transformers"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def model_files(handle: ModelHandle) -> list[Path]:
    """The files the model was read from: its GGUF file, or the weights in its folder (or hub snapshot)."""
    from hsviewer.core.model import default as default_model
    from hsviewer.core.model.discovery.ollama import OLLAMA_PREFIX, resolve_ollama
    from hsviewer.core.model.sources import local_model_folder

    source = handle.source
    try:
        if source == default_model.DEFAULT_MODEL:
            return [default_model.default_gguf_path()]
        if source.startswith(OLLAMA_PREFIX):
            return [resolve_ollama(source)]
        path = Path(source).expanduser()
        if path.is_file():
            return [path]
        folder = path if path.is_dir() else local_model_folder(source)
    except Exception as e:  # the files moved since loading: the run is still worth keeping
        log.warning("No model files to hash for %s: %s", source, e)
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES) if folder else []


def file_sha256(path: Path) -> str:
    """The file's SHA-256, remembered by its real path, size and mtime in the user cache."""
    real = Path(os.path.realpath(path))
    stat = real.stat()
    key = f"{real}|{stat.st_size}|{stat.st_mtime_ns}"
    memo_path = _hashes_path()
    memo = _read_memo(memo_path)
    if key not in memo:
        digest = hashlib.sha256()
        with real.open("rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
        memo[key] = digest.hexdigest()
        _write_memo(memo_path, memo)
    return memo[key]


def _hashes_path() -> Path:
    from hsviewer.core.model.gguf_cache import cache_root

    return cache_root() / HASHES_FILE


def _read_memo(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def _write_memo(path: Path, memo: dict[str, str]) -> None:
    from hsviewer.core.library.writing import write_json

    try:
        write_json(path, memo)
    except OSError as e:  # no cache to write: hashed again next time
        log.warning("Could not keep file hashes in %s: %s.", path, e.strerror or e)


def saving(
    events: Iterable[Any],
    handle: ModelHandle,
    *,
    kind: str,
    settings: dict[str, Any],
    texts: list[str],
    library: Library | None = None,
) -> Generator[Any, None, None]:
    """The work's events, its finished result saved to the library first (a Saved event before
    Finished). A run that could not be saved is logged, reported (SaveFailed) and still returned.
    Closing this closes the work."""
    try:
        for event in events:
            if isinstance(event, Finished):
                try:
                    yield Saved(info=save_run(kind, handle, event.result, settings, texts, library))
                except OSError as e:
                    log.warning("Could not save the %s run to the library: %s", kind, e)
                    reason = f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)
                    yield SaveFailed(message=f"The {kind} run was not saved to the runs library: {reason}.")
            yield event
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def save_run(
    kind: str,
    handle: ModelHandle,
    result: Any,
    settings: dict[str, Any],
    texts: list[str],
    library: Library | None = None,
    world_size: int = 1,
) -> RunInfo:
    """Keep a finished run, with its provenance, in the library (the user's by default)."""
    made = provenance(handle, settings=settings, texts=texts, world_size=world_size)
    return (library or Library()).save(kind, result, made)
