"""Files written whole or not at all: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from hsviewer.core.errors import HsviewerError

Writer = Callable[[Path], None]
STREAMS = ("/dev/", "/proc/")  # paths there are written through, never replaced
NAME_MAX = 255  # the usual limit on a file name (ext4, XFS, APFS: bytes; NTFS counts UTF-16 units)
RANDOM_CHARS = 8  # what tempfile.mkstemp puts between the prefix and the suffix
SUFFIX_MAX = 16  # a longer "suffix" is part of a long name ("a.<200 characters>"), not a file type


def write_atomic(path: str | Path, write: Writer) -> Path:
    """Call write(tmp) on a temporary sibling of path, then rename it over path.

    A symlink keeps being a link: its target is written. A character device or a FIFO
    (/dev/stdout, a named pipe) is written straight through, never replaced.
    """
    return write_all([(path, write)])[0]


def write_all(writes: Sequence[tuple[str | Path, Writer]]) -> list[Path]:
    """Several files written all or none: each to a temporary sibling first, then all renamed.

    When one write fails, the temporary files are removed and no target has changed
    (devices and FIFOs, written through after the others are ready, excepted).
    An OSError names the caller's path, never a temporary file's.
    """
    targets = [(Path(path), *output_target(path), write) for path, write in writes]
    staged: list[tuple[Path, Path, Path]] = []  # temporary file, target, the caller's path
    try:
        for user, target, through, write in targets:
            if through:
                continue
            _named(user, target.parent.mkdir, parents=True, exist_ok=True)
            prefix, suffix = temporary_affixes(target.name)
            fd, name = _named(user, tempfile.mkstemp, prefix=prefix, suffix=suffix, dir=target.parent)
            os.close(fd)
            staged.append((Path(name), target, user))
            os.chmod(name, 0o666 & ~_umask())  # mkstemp makes it private; an export should be an ordinary file
            _named(user, write, Path(name))
        for user, target, through, write in targets:
            if through:
                _named(user, write, target)
        for tmp, target, user in staged:
            _named(user, os.replace, tmp, target)
    except BaseException:
        for tmp, _, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    return [user for user, *_ in targets]


def temporary_affixes(name: str) -> tuple[str, str]:
    """The prefix and suffix of a temporary sibling of the file `name`: '.NAME.' and its suffix, NAME
    shortened so that the whole name (mkstemp puts RANDOM_CHARS between them) stays within
    NAME_MAX bytes: a legal 241-255-byte name must not fail after all the work."""
    suffix = Path(name).suffix if len(os.fsencode(Path(name).suffix)) <= SUFFIX_MAX else ""
    room = NAME_MAX - RANDOM_CHARS - len(os.fsencode(suffix)) - 2  # the dot before and the dot after
    stem = name
    while len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    return f".{stem}.", suffix


def output_target(path: str | Path) -> tuple[Path, bool]:
    """Where writing `path` goes, and whether it is written straight through (a device or FIFO).

    A character device or FIFO, or a link to one, is written through, and so is anything
    that exists under /dev or /proc (/dev/stdout is a file when stdout is redirected to
    one: replacing it would cut the shell's redirection). A link to a regular file (or to
    nothing yet) resolves to its target, which is replaced. A folder, a block device or a
    socket is refused with an OSError naming path.
    """
    path = Path(path)
    if not str(path).strip():
        raise OSError(errno.ENOENT, "No file name given", str(path))
    try:
        mode: int | None = os.stat(path).st_mode  # through links
    except FileNotFoundError:
        mode = None
    except OSError as e:  # a symlink loop, a parent that is a file
        raise OSError(e.errno, e.strerror, str(path)) from None
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        return path, True
    if mode is not None and stat.S_ISREG(mode) and str(path.absolute()).startswith(STREAMS):
        return path, True
    if mode is not None and stat.S_ISDIR(mode):
        raise OSError(errno.EISDIR, "Is a directory", str(path))
    if mode is not None and not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, "Not a regular file, a character device or a pipe", str(path))
    return (Path(os.path.realpath(path)) if path.is_symlink() else path), False


def _named(user: Path, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """call(*args), its OSError naming the caller's path (a failed write names no file, a rename the temporary one)."""
    try:
        return call(*args, **kwargs)
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(user)) from e


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def text_writer(text: str) -> Writer:
    def write(path: Path) -> None:
        path.write_text(text, encoding="utf-8")

    return write


def json_writer(data: dict[str, Any]) -> Writer:
    return text_writer(json.dumps(data, indent=1, allow_nan=True) + "\n")


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula


def csv_writer(rows: Iterable[Sequence[Any]]) -> Writer:
    """Rows (the first one the header) as CSV; text that a spreadsheet would run as a formula (a run
    named =HYPERLINK(...)) gets a leading ' as OWASP's CSV-injection advice says. Numbers are kept."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows([[_inert(cell) for cell in row] for row in rows])
    return text_writer(buffer.getvalue())


def _inert(cell: Any) -> Any:
    return "'" + cell if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) else cell


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    return write_atomic(path, json_writer(data))


def write_csv(path: str | Path, rows: Iterable[Sequence[Any]]) -> Path:
    """Rows (the first one the header) as CSV."""
    return write_atomic(path, csv_writer(rows))


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


def gray_png_writer(array: np.ndarray) -> Writer:
    """A matrix as an 8-bit grayscale PNG, clipped to 0..255 like the image it came from."""
    from PIL import Image

    pixels = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return lambda path: Image.fromarray(pixels, mode="L").save(path, format="PNG")
