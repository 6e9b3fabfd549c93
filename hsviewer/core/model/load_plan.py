"""The memory plan a load follows: in memory when it fits, else streamed from disk, or refused with numbers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hsviewer.core.model import gguf_cache
from hsviewer.core.model.discovery.facts import describe, facts_of
from hsviewer.core.model.memory import PLAN_TOKENS, MemoryPlan, available_bytes, plan_memory, plan_stream
from hsviewer.core.model.sources import local_model_folder, resolve_source

if TYPE_CHECKING:
    from hsviewer.core.model.load_spec import LoadSpec


def plan_load(spec: LoadSpec, *, tokens: int = PLAN_TOKENS) -> MemoryPlan | None:
    """The memory plan iter_load(spec) would follow for `tokens` tokens (None when the model's files
    do not say its size)."""
    folder, _, gguf = resolve_source(spec.source)
    device = spec.device or default_device()
    return plan_for(folder, gguf, spec.dtype, device, spec.memory_budget, tokens, spec.stream)


def plan_for(
    folder: str,
    gguf: Path | None,
    dtype: str,
    device: str,
    budget: int | None,
    tokens: int = PLAN_TOKENS,
    stream: str = "auto",
) -> MemoryPlan | None:
    """In memory when it fits (or stream is "never"), else streamed (always when stream is "always")."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        return None  # loading will say why this device cannot be used
    path = gguf or local_model_folder(folder)
    found = describe(path) if path else None
    converting = gguf is not None and not gguf_cache.is_cached(gguf, converted_dtype(dtype))
    facts = facts_of(found, converting)
    if facts is None:
        return None
    bfloat16_ok = not device.startswith("cuda") or torch.cuda.is_bf16_supported()
    available = available_bytes(device, budget)
    plan = plan_memory(
        facts,
        tokens,
        dtype=dtype,
        device=device,
        available=available,
        budget_given=budget is not None,
        bfloat16_ok=bfloat16_ok,
    )
    if stream == "never" or (stream == "auto" and plan.fits):
        return plan
    converting = gguf is not None and not gguf_cache.is_cached(gguf, "bfloat16")
    streamed = plan_stream(
        replace(facts, gguf_to_convert=converting),
        tokens,
        dtype=dtype if dtype != "auto" else compute_dtype(device),
        stored_dtype="bfloat16" if gguf is not None else _stored_dtype(found),
        device=device,
        available=available,
        budget_given=budget is not None,
    )
    if stream == "auto" and not streamed.fits:  # refused as in memory, saying that streaming would not do either
        return replace(plan, not_even_streamed=streamed)
    return streamed


def compute_dtype(device: str) -> str:
    """What a streamed model computes in: float32 on a CPU (its weights upcast a block at a time), else bfloat16
    where the GPU has it, float16 where not."""
    if not device.startswith("cuda"):
        return "float32"
    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def _stored_dtype(found: Any) -> str:
    """The precision a folder's weights are stored in, from discovery's reading of its headers (bf16 when unsaid)."""
    text = str(getattr(found, "quantisation", "") or "").lower()
    names = {"f32": "float32", "float32": "float32", "f16": "float16", "float16": "float16"}
    return names.get(text, "bfloat16")


def converted_dtype(dtype: str) -> str:
    """The precision a GGUF file is converted to: bfloat16 when loading in it, else float32."""
    return "bfloat16" if dtype == "bfloat16" else "float32"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
