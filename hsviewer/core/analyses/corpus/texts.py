"""A corpus: the texts a corpus sweep runs on, read from a folder or a file, or the bundled ones.

Read on the GUI thread too, so no torch here. A text that is empty is left out with a
note; a source that cannot give any text is an HsviewerError naming it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from hsviewer.core.errors import HsviewerError

BUNDLED = "bundled"  # the name that picks the bundled corpus
KINDS = "a folder of .txt files, a .txt file (texts separated by blank lines), a .jsonl or a .csv file"
NAME_FIELDS = ("name", "id", "title")  # a row's own name, when it has one
LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # a JSON escape ("\\ud800") gives one; UTF-8 text never has it


@dataclass(frozen=True, kw_only=True)
class CorpusText:
    name: str
    text: str


@dataclass(kw_only=True)
class Corpus:
    source: str
    texts: list[CorpusText]
    notes: list[str] = field(default_factory=list)  # what was left out, and why
    warnings: list[str] = field(default_factory=list)  # what was changed to be read: a lone surrogate, say


def read_corpus(source: str | Path) -> Corpus:
    """The texts at `source` (see KINDS), or the bundled corpus for "bundled"."""
    if str(source) == BUNDLED:
        return _read_folder(bundled_folder(), BUNDLED)
    path = Path(source).expanduser()
    if path.is_dir():
        return _read_folder(path, str(source))
    if not path.exists():
        raise HsviewerError(f"No corpus at {source}: give {KINDS}, or {BUNDLED}.")
    readers = {".txt": _read_paragraphs, ".jsonl": _read_jsonl, ".csv": _read_csv}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise HsviewerError(f"{source} is not a corpus: give {KINDS}.")
    return _nonempty(reader(path, _read(path)), str(source))


def bundled_folder() -> Path:
    from hsviewer.core.resources import resource_path

    return resource_path("corpus")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise HsviewerError(f"{path} is not UTF-8 text.") from None
    except OSError as e:
        raise HsviewerError(f"Could not read {path}: {e.strerror}.") from None


def _read_folder(folder: Path, source: str) -> Corpus:
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".txt" and p.is_file())
    except OSError as e:
        raise HsviewerError(f"Could not read the folder {source}: {e.strerror}.") from None
    if not files:
        raise HsviewerError(f"{source} holds no .txt files: a corpus folder holds one text per .txt file.")
    pairs = [(p.stem, _read(p)) for p in files]
    return _nonempty(pairs, source)


def _read_paragraphs(path: Path, content: str) -> list[tuple[str, str]]:
    parts = re.split(r"\n[ \t]*\n", content.replace("\r\n", "\n"))
    return [(f"{path.stem}:{i}", part) for i, part in enumerate(parts, 1) if part.strip()]


def _read_jsonl(path: Path, content: str) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise HsviewerError(f"Line {number} of {path} is not JSON ({e.msg}).") from None
        except RecursionError:
            raise HsviewerError(f"Line {number} of {path} is nested too deeply to be a row of a corpus.") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise HsviewerError(f'Line {number} of {path} has no "text" field holding a string.')
        name = LONE_SURROGATE.sub("\ufffd", _row_name(row, f"{path.stem}:{number}"))
        pairs.append((name, row["text"]))
    return pairs


def _read_csv(path: Path, content: str) -> list[tuple[str, str]]:
    try:
        reader = csv.DictReader(io.StringIO(content, newline=""))  # keeps newlines inside quoted fields
        columns = reader.fieldnames or []
        if "text" not in columns:
            found = ", ".join(columns) if columns else "none"
            raise HsviewerError(f'{path} has no "text" column (its columns: {found}).')
        return [(_row_name(row, f"{path.stem}:{i}"), row["text"] or "") for i, row in enumerate(reader, 1)]
    except csv.Error as e:
        raise HsviewerError(f"{path} is not a readable CSV file ({e}).") from None


def _row_name(row: dict, fallback: str) -> str:
    names = [str(row[key]).strip() for key in NAME_FIELDS if row.get(key) not in (None, "")]
    return names[0] if names else fallback


def _nonempty(pairs: list[tuple[str, str]], source: str) -> Corpus:
    """The texts that hold any, with a note for each one left out; none at all is an error."""
    texts, notes, warnings = [], [], []
    for name, text in pairs:
        text, replaced = LONE_SURROGATE.subn("\ufffd", text)  # a tokenizer takes no lone surrogate
        if replaced:
            warnings.append(f"{name} is not valid UTF-8: {replaced} lone surrogate(s) replaced with U+FFFD.")
        if text.strip():
            texts.append(CorpusText(name=name, text=text.strip()))
        else:
            notes.append(f"{name}: left out, it holds no text.")
    if not texts:
        raise HsviewerError(f"{source} holds no texts.")
    return Corpus(source=source, texts=texts, notes=notes, warnings=warnings)
