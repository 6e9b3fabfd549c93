"""Memory plans: what a model and a text will cost, known before anything is allocated.

The figures are estimates calibrated on this project's measurements (peak resident memory
of the default model: 1.19 GB at 164 tokens, 1.65 GB at 2,130 and 2.24 GB at 8,192; a
first GGUF conversion streams tensor by tensor, so it peaks near one shard of at most 1 GiB
plus a few copies of the largest tensor: 0.98 GB resident for the default model in float32,
against 1.22 GB, about 7 bytes per parameter, when transformers dequantised it whole). They let hsviewer refuse with
numbers instead of being killed by the operating system.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from hsviewer.core.errors import HsviewerError

GB = 1e9
RUNTIME_BYTES = int(0.45 * GB)  # Python, torch, transformers and a tokenizer, before any model
CONVERSION_SHARD_BYTES = 2**30  # the float32 weights a streaming conversion holds at most (gguf_cache.SHARD_BYTES)
CONVERSION_TENSOR_COPIES = 2  # of the largest tensor in float32: dequantised, then copied into torch
MARGIN = 0.85  # plan to use at most this share of what is free
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
DTYPES = ("auto", *DTYPE_BYTES)
# What the analyses keep beyond the states: the clean logits up to 256 MB, five 32 MB chunks (runs.py).
LOGIT_CACHE_BYTES = 256 * 2**20
LOGIT_CHUNKS_BYTES = 5 * 32 * 2**20


@dataclass(frozen=True, kw_only=True)
class ModelFacts:
    """What a model's files say about its size, read without loading its weights."""

    parameters: int
    n_layers: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    gguf_to_convert: bool = False  # a GGUF file whose first conversion is still ahead


@dataclass(frozen=True, kw_only=True)
class MemoryPlan:
    """The bytes a model needs in one precision on one device, against what is available."""

    dtype: str
    device: str
    weights: int
    conversion: int  # the first GGUF conversion's peak, 0 when none is ahead
    analysis: int  # the working set of an analysis of `tokens` tokens
    tokens: int
    available: int
    budget_given: bool
    streamed: bool = False  # the weights stay on disk and come in a block at a time (core/streaming.py)
    stored_dtype: str = ""  # streamed: the precision the weights are stored in, and read in
    resident: int = 0  # streamed: what is in memory besides the analysis (embeddings, one block)
    seconds: float = 0.0  # streamed: a sweep's estimated time, from the bytes to read and the FLOPs
    cache_bytes: int = 0  # the disk a first GGUF conversion will fill in the user cache, 0 when none is ahead
    not_even_streamed: MemoryPlan | None = None  # an in-memory plan's streamed alternative, when that does not fit

    @property
    def peak(self) -> int:
        held = self.resident if self.streamed else self.weights
        return RUNTIME_BYTES + max(self.conversion, held + self.analysis)

    @property
    def fits(self) -> bool:
        return self.peak <= MARGIN * self.available

    def summary(self) -> str:
        """The plan in a few words, for a status bar: 'peak 1.19 GB of 20.00 GB free'."""
        where = "budget" if self.budget_given else "free"
        return f"peak {format_size(self.peak)} of {format_size(self.available)} {where}"

    def describe(self) -> str:
        converting = f", first conversion {format_size(self.conversion)}" if self.conversion else ""
        if self.cache_bytes:
            converting += f" (the cache will hold {format_size(self.cache_bytes)} on disk)"
        where = "budget" if self.budget_given else "free"
        if self.streamed:
            return (
                f"Memory plan: weights {format_size(self.weights)} {self.stored_dtype} on disk, streamed; compute "
                f"{self.dtype} on {self.device}; analysis of {self.tokens} tokens {format_size(self.analysis)}"
                f"{converting}; peak {format_size(self.peak)} of {format_size(self.available)} {where}; "
                f"about {self.seconds:.0f} s per sweep"
            )
        return (
            f"Memory plan ({self.dtype} on {self.device}): weights {format_size(self.weights)}, analysis of "
            f"{self.tokens} tokens {format_size(self.analysis)}{converting}; peak {format_size(self.peak)} of "
            f"{format_size(self.available)} {where}"
        )


def plan_memory(
    facts: ModelFacts,
    tokens: int,
    *,
    dtype: str = "auto",
    device: str = "cpu",
    available: int,
    budget_given: bool = False,
    bfloat16_ok: bool = True,
) -> MemoryPlan:
    """The plan for one precision, or for `auto` the widest that fits: float32 when it fits
    with the margin, else bfloat16 (float16 where a GPU has no bfloat16)."""
    if dtype not in DTYPES:
        raise HsviewerError(f"Unknown dtype {dtype!r}: use {', '.join(DTYPES)}.")
    if dtype != "auto":
        return _plan(facts, tokens, dtype, device, available, budget_given)
    half = "bfloat16" if bfloat16_ok else "float16"
    plans = [_plan(facts, tokens, d, device, available, budget_given) for d in ("float32", half)]
    return next((p for p in plans if p.fits), plans[-1])


@dataclass(frozen=True, kw_only=True)
class RefusalWords:
    """How a refusal names the choices that change a plan: the CLI's flags here, the app's fields in the GUI."""

    half: str = "precision bfloat16 (--dtype bfloat16: half the weights)"
    gpu: str = "a GPU (--device cuda)"
    budget: str = "A memory budget (--memory-budget) overrides what counts as available."


CLI_WORDS = RefusalWords()


def refusal(plan: MemoryPlan, words: RefusalWords = CLI_WORDS) -> str:
    """Why a plan that does not fit is refused, and what to try, in the words of the CLI or the app."""
    if plan.streamed:
        return (
            f"Not enough memory even streaming the weights: {plan.describe()}; one block and the embeddings "
            f"need {format_size(plan.resident)} beside the analysis, and hsviewer keeps {100 - MARGIN * 100:.0f}% "
            f"in reserve. Try a shorter text, or more memory. {words.budget}"
        )
    tips = []
    if plan.dtype == "float32":
        tips.append(words.half)
    if plan.analysis > plan.weights / 4:
        tips.append("a shorter text")
    if plan.device == "cpu":
        tips.append(words.gpu)
    try_ = f" Try {', '.join(tips)}." if tips else ""
    alternative = plan.not_even_streamed
    streamed = (
        f" Streamed from disk it would not fit either: peak {format_size(alternative.peak)}, with one block and the "
        f"embeddings {format_size(alternative.resident)}."
        if alternative
        else ""
    )
    return (
        f"Not enough memory: {plan.describe()}, and hsviewer keeps {100 - MARGIN * 100:.0f}% in reserve."
        f"{streamed}{try_} {words.budget}"
    )


class MemoryRefused(HsviewerError):
    """A load refused by its memory plan; the message names the CLI's flags, `plan` lets the app word its own."""

    def __init__(self, plan: MemoryPlan) -> None:
        super().__init__(refusal(plan))
        self.plan = plan


def analysis_bytes(facts: ModelFacts, tokens: int, dtype: str) -> int:
    """A sweep's or a reduction's working set: every block's clean output, one block's
    activations, the SVD's matrices and the logits in chunks (runs.py)."""
    width = DTYPE_BYTES[dtype]
    states = facts.n_layers * tokens * facts.hidden_size * width
    activations = 6 * tokens * max(facts.hidden_size, facts.intermediate_size) * width
    svd = 6 * tokens * min(tokens, facts.hidden_size) * 4
    clean_logits = 2 * tokens * facts.vocab_size * 4
    logits = (clean_logits if clean_logits <= LOGIT_CACHE_BYTES else 0) + LOGIT_CHUNKS_BYTES
    return states + activations + svd + logits


def sweep_row_bytes(facts: ModelFacts, tokens: int, dtype: str) -> int:
    """What one more row of a batched sweep pass (core/batched.py) costs: the block's input and
    assembled output, the rows cut out for it, the head's input kept for the metrics, one
    block's activations, and the row's own SVD and reduced hidden state (float32)."""
    width = DTYPE_BYTES[dtype]
    states = 4 * tokens * facts.hidden_size * width
    activations = 6 * tokens * max(facts.hidden_size, facts.intermediate_size) * width
    svd = tokens * (3 * min(tokens, facts.hidden_size) + 2 * facts.hidden_size) * 4
    return states + activations + svd


def sweep_batch(facts: ModelFacts, tokens: int, dtype: str, free: int) -> int:
    """How many layers' tails one batched pass may hold in `free` bytes (what is free once the
    clean pass is kept), with the margin and the logit chunks set aside; 1 to the layers."""
    fit = (MARGIN * free - LOGIT_CHUNKS_BYTES) // sweep_row_bytes(facts, tokens, dtype)
    return int(max(1, min(facts.n_layers, fit)))


STREAMS = ("auto", "always", "never")
HEAD_CHUNK_BYTES = 64 * 2**20  # a streamed model's LM head upcasts this much of itself at a time (core/streaming.py)
READ_BYTES_PER_S = 1.5e9  # a laptop's SSD, or the page cache when it is warm: the estimate's order of magnitude
FLOPS = {"cpu": 5e10, "cuda": 5e13}  # float32 on a few CPU cores; bf16 on a mid-range GPU


def plan_stream(
    facts: ModelFacts,
    tokens: int,
    *,
    dtype: str,
    stored_dtype: str,
    device: str = "cpu",
    available: int,
    budget_given: bool = False,
) -> MemoryPlan:
    """The plan for weights streamed from disk in `stored_dtype` and computed a block at a time in
    `dtype`: in memory the input and output embeddings as stored (their lookup and the chunked
    head upcast what they use), one block in both precisions, and the analysis; a sweep's time
    from reading the weights once per pass and its FLOPs (core/streaming.py)."""
    stored, width = DTYPE_BYTES[stored_dtype], DTYPE_BYTES[dtype]
    embedding = facts.vocab_size * facts.hidden_size
    block = max(facts.parameters - 2 * embedding, facts.parameters // 2) // facts.n_layers
    resident = 2 * embedding * stored + block * (stored + width) + HEAD_CHUNK_BYTES
    analysis = analysis_bytes(facts, tokens, dtype)
    free = MARGIN * available - RUNTIME_BYTES - resident - analysis
    rows = sweep_batch(facts, tokens, dtype, int(max(free, 0)))
    passes = 1 + -(-facts.n_layers // rows)  # the clean pass, then the batched tails
    L = facts.n_layers
    flops = 2 * tokens * (block * (L + L * (L - 1) / 2) + embedding * (L + 2))
    rate = FLOPS["cuda" if device.startswith("cuda") else "cpu"]
    return MemoryPlan(
        dtype=dtype,
        device=device,
        weights=facts.parameters * stored,
        conversion=conversion_bytes(facts) if facts.gguf_to_convert else 0,
        cache_bytes=facts.parameters * stored if facts.gguf_to_convert else 0,
        analysis=analysis,
        tokens=tokens,
        available=available,
        budget_given=budget_given,
        streamed=True,
        stored_dtype=stored_dtype,
        resident=resident,
        seconds=passes * facts.parameters * stored / READ_BYTES_PER_S + flops / rate,
    )


PLAN_TOKENS = 1024  # the text a load is planned for; each analysis checks its own


def free_bytes(device: str, budget: int | None = None) -> int:
    """What may still be allocated: on a GPU its free memory and what torch's allocator holds
    unused; else what is free, and no more than the budget less what this process holds."""
    if device.startswith("cuda"):
        import torch

        gpu = torch.device(device)
        cached = torch.cuda.memory_reserved(gpu) - torch.cuda.memory_allocated(gpu)
        return int(torch.cuda.mem_get_info(gpu)[0]) + cached
    import psutil

    free = int(psutil.virtual_memory().available)
    return free if budget is None else min(free, budget - int(psutil.Process().memory_info().rss))


def available_bytes(device: str, budget: int | None = None) -> int:
    """What a plan for the whole process may count on: the budget, else what it holds plus what is free."""
    if budget is not None:
        return budget
    if device.startswith("cuda"):
        return free_bytes(device)
    import psutil

    return free_bytes(device) + int(psutil.Process().memory_info().rss)


def check_analysis(facts: ModelFacts, tokens: int, dtype: str, device: str, budget: int | None) -> None:
    """Refuse, with numbers, an analysis whose working set does not fit beside the loaded model."""
    needed = analysis_bytes(facts, tokens, dtype)
    free = free_bytes(device, budget)
    if needed > MARGIN * free:
        where = "left in the memory budget" if budget is not None else "free"
        raise HsviewerError(
            f"Not enough memory for this text: its analysis ({tokens} tokens) needs about {format_size(needed)}, "
            f"and {format_size(max(free, 0))} is {where}. Try a shorter text."
        )


MAX_SIZE = 2**64  # bytes: more than any machine addresses; a larger budget is a typo


def parse_size(text: str) -> int:
    """'6GB', '512 MB', '8g', '1.5GiB' or a number of bytes, as bytes."""
    shown = _shown(text)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(i?)b?)?\s*", str(text).lower())
    if not match:
        raise HsviewerError(f"A memory size looks like 6GB, 6GiB or 512MB; got {shown}.")
    unit, binary = match.group(2) or " ", match.group(3)
    value = Decimal(match.group(1)) * (1024 if binary else 1000) ** " kmgt".index(unit)  # exact: no float to overflow
    if value >= MAX_SIZE:
        raise HsviewerError(f"A memory budget of {shown} is more than any machine has.")
    if int(value) <= 0:
        raise HsviewerError(f"A memory budget must be more than zero; got {shown}.")
    return int(value)


def _shown(text: str, limit: int = 40) -> str:
    """The text as a message quotes it, cut to `limit` characters (a 401-digit number stays one short line)."""
    quoted = repr(str(text))
    return quoted if len(quoted) <= limit else f"{quoted[: limit - 4]}…{quoted[-3:]} ({len(str(text))} characters)"


def _plan(facts: ModelFacts, tokens: int, dtype: str, device: str, available: int, budget_given: bool) -> MemoryPlan:
    return MemoryPlan(
        dtype=dtype,
        device=device,
        weights=facts.parameters * DTYPE_BYTES[dtype],
        conversion=conversion_bytes(facts) if facts.gguf_to_convert else 0,
        cache_bytes=facts.parameters * (2 if dtype == "bfloat16" else 4) if facts.gguf_to_convert else 0,
        analysis=analysis_bytes(facts, tokens, dtype),
        tokens=tokens,
        available=available,
        budget_given=budget_given,
    )


def conversion_bytes(facts: ModelFacts) -> int:
    """A first GGUF conversion's peak beyond the runtime: a shard being filled and the tensor being converted."""
    largest = max(facts.vocab_size, facts.intermediate_size) * facts.hidden_size  # the embedding, or an MLP weight
    return min(facts.parameters * 4, CONVERSION_SHARD_BYTES) + CONVERSION_TENSOR_COPIES * 4 * largest


def format_size(size: int) -> str:
    """Bytes in the unit that fits, in powers of 1000 as the budgets are given: '1.19 GB', '512.0 MB', '64.0 kB'.

    A plan of a tiny model, or a budget of 1MB, read '0.00 GB' in GB alone."""
    for scale, unit, digits in ((GB, "GB", 2), (10**6, "MB", 1), (10**3, "kB", 1)):
        if abs(size) >= scale:
            return f"{size / scale:.{digits}f} {unit}"
    return f"{size} bytes"
