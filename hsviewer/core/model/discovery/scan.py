"""Listing every source in turn, a model found twice kept once, the memory each needs added."""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

from hsviewer.core.errors import HsviewerError
from hsviewer.core.events import Finished, Progress, run_to_end
from hsviewer.core.model import default as default_model
from hsviewer.core.model.discovery.facts import with_memory
from hsviewer.core.model.discovery.folders import added_models, gguf_tree
from hsviewer.core.model.discovery.found import KINDS, FoundModel
from hsviewer.core.model.discovery.gguf_rows import gguf_model
from hsviewer.core.model.discovery.hf_cache import hf_cache_models
from hsviewer.core.model.discovery.ollama import ollama_models
from hsviewer.core.model.discovery.remembered import remembered_paths
from hsviewer.core.model.discovery.stores import (
    gpt4all_dir,
    hf_hub_cache,
    llama_cpp_cache,
    lmstudio_dirs,
    ollama_models_dir,
)

log = logging.getLogger(__name__)


def iter_find_models(
    paths: Iterable[str | Path] = (), *, remembered: bool = True
) -> Generator[Progress | Finished[list[FoundModel]], None, None]:
    """Scan every source, yielding a Progress event before each; ends with Finished(models).

    The default model comes first, then the rest by kind and name. A model found twice
    (an added folder that holds LM Studio's) is listed once, under its first source.
    """
    extra = [Path(p).expanduser() for p in paths]
    if remembered:
        extra += [p for p in remembered_paths() if p not in extra]
    sources: list[tuple[str, Any]] = [
        ("the default model", _default_model),
        ("the Hugging Face cache", lambda: hf_cache_models(hf_hub_cache())),
        ("Ollama's models", lambda: ollama_models(ollama_models_dir())),
        ("LM Studio's models", lambda: (m for root in lmstudio_dirs() for m in gguf_tree(root, "lmstudio", 2))),
        ("GPT4All's models", lambda: gguf_tree(gpt4all_dir(), "gpt4all", 0)),
        ("llama.cpp's cache", lambda: gguf_tree(llama_cpp_cache(), "llama.cpp", 1)),
        ("the added folders", lambda: (m for root in extra for m in added_models(root))),
    ]
    found: list[FoundModel] = []
    seen: set[str] = set()
    for what, scan in sources:
        yield Progress(message=f"Scanning {what}")
        try:
            for model in scan():
                key = model.source if model.kind == "ollama" else _identity(model.path)
                if key not in seen:
                    seen.add(key)
                    found.append(model)
        except OSError as e:  # a folder that cannot be read: the other sources still count
            log.warning("Could not finish scanning %s: %s", what, e)
    found.sort(key=lambda m: (KINDS.index(m.kind), m.name.lower()))
    yield Finished(result=with_memory(found))


def find_models(paths: Iterable[str | Path] = (), *, remembered: bool = True) -> list[FoundModel]:
    """iter_find_models to its end: the models on this machine, the default first."""
    models: list[FoundModel] = run_to_end(iter_find_models(paths, remembered=remembered))
    return models


def _identity(path: str) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return path


def _default_model() -> Iterator[FoundModel]:
    try:
        path = default_model.default_gguf_path()
    except HsviewerError as e:
        yield FoundModel(name="default", source="default", kind="default", path="", problem=str(e))
        return
    model = gguf_model(path, name="default", source="default", kind="default")
    if model is not None:
        yield model
