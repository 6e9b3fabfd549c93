"""What a model's headers tell the memory plan: its sizes before loading, and each row's memory need."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from hsviewer.core.model.discovery.found import FoundModel
from hsviewer.core.model.discovery.gguf_rows import gguf_model
from hsviewer.core.model.discovery.hf_rows import hf_model
from hsviewer.core.model.memory import PLAN_TOKENS, ModelFacts, available_bytes, plan_memory


def describe(path: str | Path) -> FoundModel | None:
    """What the headers of one model folder or GGUF file say (no weights are read)."""
    path = Path(path)
    if path.suffix.lower() == ".gguf" or path.is_file():  # an Ollama blob is a GGUF file without the suffix
        return gguf_model(path, name=path.stem, source=str(path), kind="folder")
    return hf_model(path, name=path.name, source=str(path), kind="folder")


def facts_of(found: FoundModel | None, gguf_to_convert: bool) -> ModelFacts | None:
    """A model's facts from what discovery read in its headers; None when they say too little."""
    if found is None or not (found.parameters and found.layers and found.hidden_size):
        return None
    return ModelFacts(
        parameters=found.parameters,
        n_layers=found.layers,
        hidden_size=found.hidden_size,
        intermediate_size=found.intermediate_size or 4 * found.hidden_size,
        vocab_size=found.vocab_size or 32_000,
        gguf_to_convert=gguf_to_convert,
    )


def with_memory(models: Sequence[FoundModel]) -> list[FoundModel]:
    """The models with what their memory plan needs here (at PLAN_TOKENS tokens, in the precision
    `auto` picks on this machine's CPU memory), where their headers say enough."""
    available = available_bytes("cpu")
    rows = []
    for model in models:
        facts = facts_of(model, gguf_to_convert=False)
        if facts is not None:
            plan = plan_memory(facts, PLAN_TOKENS, available=available)
            model = replace(model, memory_bytes=plan.peak, memory_dtype=plan.dtype)
        rows.append(model)
    return rows
