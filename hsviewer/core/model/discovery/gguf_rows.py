"""A GGUF file as a listing's row, from its header: its sizes, its quantisation, or why it may not load."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hsviewer.core.model.discovery.files import file_size
from hsviewer.core.model.discovery.found import FoundModel, first_int
from hsviewer.core.model.discovery.gguf_header import read_gguf_header

log = logging.getLogger(__name__)

NOT_CAUSAL_GGUF = {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "neo-bert", "t5", "t5encoder", "clip"}
NOT_MODEL_GGUF_TYPES = {"adapter", "mmproj", "clip-vision"}


def gguf_model(path: Path, *, name: str, source: str, kind: str) -> FoundModel | None:
    """A row for a GGUF file from its header; None when the file is not a causal LM (an embedding
    model, a vision projector, a LoRA adapter)."""
    try:
        header = read_gguf_header(path)
    except (OSError, ValueError) as e:
        return FoundModel(
            name=name, source=source, kind=kind, path=str(path), file_bytes=file_size(path) or None, problem=str(e)
        )
    meta = header.metadata
    arch = meta.get("general.architecture")
    if arch in NOT_CAUSAL_GGUF or meta.get("general.type") in NOT_MODEL_GGUF_TYPES or not header.tensor_count:
        log.debug("Skipping %s: not a causal LM (%s, %s)", path, arch, meta.get("general.type"))
        return None
    if first_int(meta, "split.no"):  # a later part of a split file: its first part stands for it
        return None
    parts = first_int(meta, "split.count") or 1
    problem = (
        f"the first of {parts} parts of a split GGUF; hsviewer loads single-file GGUF models"
        if parts > 1
        else header.truncation()
    )
    prefix = f"{arch}." if isinstance(arch, str) else "?."
    vocab = meta.get(prefix + "vocab_size") or meta.get("tokenizer.ggml.tokens")
    return FoundModel(
        name=name,
        source=source,
        kind=kind,
        path=str(path),
        architecture=arch if isinstance(arch, str) else None,
        parameters=header.parameters,
        layers=first_int(meta, prefix + "block_count"),
        hidden_size=first_int(meta, prefix + "embedding_length"),
        vocab_size=vocab if isinstance(vocab, int) and vocab > 0 else None,
        intermediate_size=first_int(meta, prefix + "feed_forward_length"),
        quantisation=gguf_file_type(meta.get("general.file_type")),
        file_bytes=header.file_bytes,
        problem=problem,
    )


def gguf_file_type(value: Any) -> str | None:
    """general.file_type as llama.cpp names it: Q4_K_M, Q8_0, F16, F32, ..."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    from gguf import LlamaFileType

    try:
        return LlamaFileType(value).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return f"file type {value}"
