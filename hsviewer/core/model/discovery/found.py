"""One model found on disk, as every source reports it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

KINDS = ("default", "hf-cache", "ollama", "lmstudio", "gpt4all", "llama.cpp", "folder")


@dataclass(frozen=True, kw_only=True)
class FoundModel:
    """One model found on disk: what the user calls it, how to load it, and what its headers say."""

    name: str
    source: str  # what load_model accepts: 'default', a path, a hub id, ollama:NAME:TAG
    kind: str  # one of KINDS
    path: str  # the file or folder on disk
    architecture: str | None = None
    parameters: int | None = None
    parameters_estimated: bool = False  # counted from config.json's sizes, not from the weights' headers
    layers: int | None = None
    hidden_size: int | None = None
    vocab_size: int | None = None
    intermediate_size: int | None = None  # the MLP's width
    quantisation: str | None = None  # a GGUF file type (Q4_K_M, F16, ...) or the weights' dtype
    file_bytes: int | None = None
    memory_bytes: int | None = None  # the memory plan's peak at PLAN_TOKENS tokens, in memory_dtype
    memory_dtype: str | None = None  # the precision `auto` would load it in here
    problem: str | None = None  # why it may not load (a missing blob, an unreadable header)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def first_int(config: dict[str, Any], *keys: str) -> int | None:
    """The first positive integer under these keys (a config.json's or a GGUF header's sizes, which
    models name each their own way); None when none is one."""
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
