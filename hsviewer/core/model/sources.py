"""From the source string a user gives ('default', a folder, a .gguf file, ollama:NAME:TAG, a hub id)
to what from_pretrained or the GGUF conversion reads."""

from __future__ import annotations

import os
from pathlib import Path

from hsviewer.core.errors import HsviewerError
from hsviewer.core.model import default as default_model
from hsviewer.core.model.default import DEFAULT_MODEL
from hsviewer.core.model.discovery.ollama import OLLAMA_PREFIX, resolve_ollama


def resolve_source(source: str) -> tuple[str, str, Path | None]:
    """A folder (or hub id) from_pretrained can read, a display name, and the GGUF file if any.

    For a GGUF file the folder is its cache folder, which may still have to be built.
    """
    if source == DEFAULT_MODEL:
        return "", "SmolLM2-135M-Instruct", default_model.default_gguf_path()
    if source.startswith(OLLAMA_PREFIX):  # ollama:NAME:TAG, a GGUF blob in Ollama's store
        return "", source.removeprefix(OLLAMA_PREFIX), resolve_ollama(source)
    path = Path(source).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise HsviewerError(f"No GGUF file at {source}.")
        return "", path.stem, path
    if path.is_dir():
        _check_folder(path)
        return str(path), path.name, None
    if os.path.lexists(path) or source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source:
        raise HsviewerError(f"No model folder at {source}.")
    return source, source, None


def _check_folder(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise HsviewerError(f"{path} has no config.json: it is not a Hugging Face model folder.")
    weights = [p for pattern in ("*.safetensors", "*.bin", "*.index.json") for p in path.glob(pattern)]
    if not weights:
        raise HsviewerError(f"{path} has no weights (model.safetensors or pytorch_model.bin).")


def local_model_folder(folder: str) -> Path | None:
    """A model folder on disk: the folder itself, or a hub id's snapshot in the local cache."""
    if Path(folder).is_dir():
        return Path(folder)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(folder, local_files_only=True))
    except Exception:  # not in the cache, or not a hub id: no plan, as before
        return None
