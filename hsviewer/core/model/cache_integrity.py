"""Checksums of a converted model's files: recorded at conversion, checked when a file has changed.

A cache folder holds hundreds of MB of weights that a disk error, a stray write or a copy cut
short can damage without changing their size, and a model loaded from them computes on wrong
numbers without a word. The conversion records each file's SHA-256 in the manifest (streamed:
about 0.8 GB/s on an idle 2-core machine, 1.4 s for a 1 GiB shard, against the minute and more
the conversion of such a model takes), with each file's size and modification time. A load
hashes again only a file whose size or time differs from the ones last verified, then remembers
the new ones, so an ordinary load reads no weights twice; `hsviewer cache verify` hashes all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

VERIFIED = "hsviewer-verified.json"  # {file: [size, mtime_ns]} as last verified; rewritten, never trusted for content
CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The file's SHA-256, read a MiB at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checksums(folder: Path, names: list[str]) -> dict[str, str]:
    """The SHA-256 of each named file in the folder."""
    return {name: sha256_file(folder / name) for name in names}


def _stamp(path: Path) -> list[int]:
    info = path.stat()
    return [info.st_size, info.st_mtime_ns]


def remember_verified(folder: Path, names: list[str]) -> None:
    """Record the files' sizes and times as verified; a folder that cannot be written is verified again next time."""
    try:
        text = json.dumps({name: _stamp(folder / name) for name in names})
        fd, tmp = tempfile.mkstemp(prefix=f".{VERIFIED}.", dir=folder)
    except OSError as e:
        log.debug("Could not record the verified files of %s: %s", folder, e)
        return
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, folder / VERIFIED)
    except OSError as e:
        log.debug("Could not record the verified files of %s: %s", folder, e)
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def changed_since_verified(folder: Path, names: list[str]) -> list[str]:
    """The files whose size or modification time is not the one last verified (all, when none was)."""
    try:
        stamps = json.loads((folder / VERIFIED).read_text())
        if not isinstance(stamps, dict):
            stamps = {}
    except (OSError, ValueError, RecursionError):
        stamps = {}
    out = []
    for name in names:
        try:
            if stamps.get(name) != _stamp(folder / name):
                out.append(name)
        except OSError:
            out.append(name)
    return out


def damage(folder: Path, recorded: dict[str, str], names: list[str]) -> str | None:
    """What is wrong with the named files against their recorded checksums, in words; None when nothing."""
    bad = []
    for name in names:
        try:
            if sha256_file(folder / name) != recorded.get(name):
                bad.append(name)
        except OSError as e:
            return f"{name} cannot be read ({e.strerror or e})"
    if not bad:
        return None
    listed = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    return f"{listed} {'does' if len(bad) == 1 else 'do'} not match the checksum recorded at conversion"


def verify(folder: Path, recorded: dict[str, str], everything: bool = False) -> str | None:
    """Hash the files changed since last verified (or all of them), remember them when whole; the damage or None."""
    names = sorted(recorded)
    todo = names if everything else changed_since_verified(folder, names)
    if not todo:
        return None
    problem = damage(folder, recorded, todo)
    if problem is None:
        remember_verified(folder, names)
    return problem
