"""The folders and model files the user added, kept in a small JSON file in the user config folder."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from hsviewer.core.errors import HsviewerError
from hsviewer.core.model.discovery.files import loads

log = logging.getLogger(__name__)

PATHS_FILE = "model-paths.json"


def paths_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("hsviewer", appauthor=False)) / PATHS_FILE


def remembered_paths() -> list[Path]:
    """The folders and files added with `hsviewer models --add` or the app; [] when the file is
    missing or damaged (with a warning)."""
    file = paths_file()
    try:
        data = loads(file.read_text(encoding="utf-8"), file.name)
        paths = data["paths"]
        if not isinstance(paths, list):
            raise TypeError("paths is not a list")
        return [Path(p) for p in paths if isinstance(p, str) and p]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("Ignoring the unreadable list of model folders %s (%s)", file, e)
        return []


def remember_path(path: str | Path) -> Path:
    """Add a folder or a model file to the remembered ones; returns it as stored (absolute)."""
    chosen = Path(path).expanduser().resolve()
    if not chosen.exists():
        raise HsviewerError(f"No folder or file at {path}.")
    paths = remembered_paths()
    if chosen not in paths:
        _write_paths([*paths, chosen])
    return chosen


def forget_path(path: str | Path) -> Path:
    """Remove a folder or file from the remembered ones (given as added, or as it resolves)."""
    paths = remembered_paths()
    given = Path(path).expanduser()
    for candidate in (given, given.resolve()):
        if candidate in paths:
            _write_paths([p for p in paths if p != candidate])
            return candidate
    raise HsviewerError(f"{path} is not among the added model folders ({', '.join(map(str, paths)) or 'none'}).")


def _write_paths(paths: Sequence[Path]) -> None:
    file = paths_file()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(file.name + ".new")
        tmp.write_text(json.dumps({"paths": [str(p) for p in paths]}, indent=2) + "\n", encoding="utf-8")
        tmp.replace(file)
    except OSError as e:
        raise HsviewerError(f"Could not save the list of model folders to {file}: {e.strerror or e}.") from None
