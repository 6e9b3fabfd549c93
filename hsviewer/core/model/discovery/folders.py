"""Folders of model files: LM Studio's, GPT4All's and llama.cpp's GGUF files, and the folders the user added."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from hsviewer.core.model.discovery.found import FoundModel
from hsviewer.core.model.discovery.gguf_rows import gguf_model
from hsviewer.core.model.discovery.hf_rows import hf_model, is_hf_folder

FOLDER_DEPTH = 2  # an added folder is searched this many levels below itself


def gguf_tree(root: Path, kind: str, depth: int) -> Iterator[FoundModel]:
    """The .gguf files in root and up to `depth` folders below, named by their path under root."""
    for path in files_below(root, depth, ".gguf"):
        model = gguf_model(path, name=path.relative_to(root).as_posix(), source=str(path), kind=kind)
        if model is not None:
            yield model


def files_below(root: Path, depth: int, suffix: str) -> Iterator[Path]:
    """The files with this suffix in root and up to `depth` folders below, in name order, hidden ones left out."""
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.suffix.lower() == suffix and entry.is_file():
            yield entry
        elif depth > 0 and entry.is_dir():
            yield from files_below(entry, depth - 1, suffix)


def added_models(root: Path) -> Iterator[FoundModel]:
    """A folder the user added: Hugging Face model folders and .gguf files up to FOLDER_DEPTH
    below it; or one .gguf file or model folder added by itself."""
    if root.is_file():
        if root.suffix.lower() == ".gguf":
            model = gguf_model(root, name=root.name, source=str(root), kind="folder")
            if model is not None:
                yield model
        return
    yield from _folder_tree(root, root, FOLDER_DEPTH)


def _folder_tree(root: Path, folder: Path, depth: int) -> Iterator[FoundModel]:
    if is_hf_folder(folder):
        name = folder.relative_to(root).as_posix() if folder != root else folder.name
        model = hf_model(folder, name=name, source=str(folder), kind="folder")
        if model is not None:
            yield model
        return
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.suffix.lower() == ".gguf" and entry.is_file():
            model = gguf_model(entry, name=entry.relative_to(root).as_posix(), source=str(entry), kind="folder")
            if model is not None:
                yield model
        elif depth > 0 and entry.is_dir():
            yield from _folder_tree(root, entry, depth - 1)
