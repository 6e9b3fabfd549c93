"""Load a local causal language model from one source string, offline first.

The source is resolved in sources, the memory plan made in load_plan, from_pretrained called in
pretrained; here the steps run in order as events, and the loaded model is checked and handed back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hsviewer.core.errors import HsviewerError
from hsviewer.core.events import Finished, Progress, run_to_end
from hsviewer.core.model import gguf_cache, streaming
from hsviewer.core.model.anatomy import find_blocks, separable_head
from hsviewer.core.model.default import DEFAULT_MODEL
from hsviewer.core.model.finite import check_finite
from hsviewer.core.model.load_plan import compute_dtype, converted_dtype, default_device, plan_for
from hsviewer.core.model.load_spec import LoadSpec
from hsviewer.core.model.memory import MARGIN, RUNTIME_BYTES, MemoryPlan, MemoryRefused, ModelFacts, check_analysis
from hsviewer.core.model.pretrained import load_pretrained
from hsviewer.core.model.sources import local_model_folder, resolve_source


@dataclass(kw_only=True)
class ModelHandle:
    """A loaded model with what the analyses need to know about it."""

    model: Any  # a transformers causal LM (torch.nn.Module)
    tokenizer: Any
    source: str
    name: str
    blocks: list[torch.nn.Module]
    device: torch.device
    context_length: int | None
    head: torch.nn.Module | None = None  # the LM head when the logits are it applied to its input
    memory_budget: int | None = None  # bytes the analyses may count on, when the user set a budget
    plan: MemoryPlan | None = None  # the memory plan the load followed (None: the files did not say the size)
    cache_folder: Path | None = None  # a GGUF model's converted folder, which the cache dialog may delete
    stream: streaming.Stream | None = None  # the weight reader of a model streamed from disk (core/streaming.py)
    compute_dtype: str | None = None  # a streamed model's: what its blocks compute in (its embeddings stay as stored)

    @property
    def streamed(self) -> bool:
        return self.stream is not None

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def hidden_size(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[1])

    @property
    def dtype(self) -> str:
        return self.compute_dtype or str(self.model.dtype).removeprefix("torch.")

    def facts(self) -> ModelFacts:
        """The sizes a memory plan needs, from the loaded model."""
        config = self.model.config.get_text_config()
        return ModelFacts(
            parameters=sum(p.numel() for p in self.model.parameters()),
            n_layers=self.n_layers,
            hidden_size=self.hidden_size,
            intermediate_size=getattr(config, "intermediate_size", None) or 4 * self.hidden_size,
            vocab_size=int(self.model.get_input_embeddings().weight.shape[0]),
        )

    def check_memory(self, tokens: int) -> None:
        """Refuse an analysis of `tokens` tokens that would not fit beside the model."""
        check_analysis(self.facts(), tokens, self.dtype, str(self.device), self.memory_budget)


LoadEvent = Progress | Finished["ModelHandle"]


def iter_load(spec: LoadSpec) -> Generator[LoadEvent, None, None]:
    """Load 'default', a model folder, a .gguf file or a hub id from the local cache, as the spec says.

    Yields a Progress event before each step (the memory plan, a first dequantisation,
    reading the weights, moving them) and ends with Finished(handle). The spec was checked
    when it was built (load_spec.LoadSpec says what each choice does); spec.threads is the
    caller's to set on the thread that computes (linalg.threads.use_threads).
    """
    source, device, dtype, device_map = spec.source, spec.device, spec.dtype, spec.device_map
    memory_budget, stream = spec.memory_budget, spec.stream
    kwargs: dict[str, Any] = {"trust_remote_code": spec.trust_remote_code}
    folder, name, gguf = resolve_source(source)
    cache_folder = None
    plan = (
        None if device_map else plan_for(folder, gguf, dtype, device or default_device(), memory_budget, stream=stream)
    )
    if plan is not None:
        yield Progress(message=plan.describe())
        if not plan.fits:
            raise MemoryRefused(plan)
        dtype = plan.dtype
    streamed = plan.streamed if plan is not None else stream == "always"
    max_memory = None
    if streamed:
        dtype = dtype if dtype != "auto" else compute_dtype(device or default_device())
        device_map, max_memory = _stream_map(device or default_device(), plan)
    converted = "bfloat16" if streamed else converted_dtype(dtype)  # streamed: stored as compactly as it can be
    if gguf is not None:
        folder = yield from gguf_cache.cached_folder(gguf, dtype=converted)
        cache_folder = Path(folder)
    elif streamed:
        streaming.check_safetensors(local_model_folder(folder), name)
    yield Progress(message=f"Loading {name}" + (": the weights stay on disk, streamed a block at a time" * streamed))
    try:
        model, tokenizer = load_pretrained(folder, name, kwargs, dtype, device_map, max_memory)
    except HsviewerError:
        if gguf is None:
            raise
        yield Progress(message="The cached model is damaged: rebuilding it")
        folder = yield from gguf_cache.cached_folder(gguf, rebuild=True, dtype=converted)
        model, tokenizer = load_pretrained(folder, name, kwargs, dtype, device_map, max_memory)
    stream_reader = None
    if streamed:
        stored = plan.stored_dtype if plan is not None else dtype
        stream_reader = streaming.attach(model, stored)
    elif device_map is None:
        device = device or default_device()
        yield Progress(message=f"Putting {name} on {device}")
        _to_device(model, name, device)
    model.eval()
    blocks = find_blocks(model, _n_layers(model.config))
    probes = streaming.first_block_only(blocks) if streamed else contextlib.nullcontext()
    with probes:
        handle = _handle(model, tokenizer, source, name, blocks, memory_budget, plan, cache_folder)
        if streamed:
            handle.device = torch.device(device or default_device())
            handle.stream, handle.compute_dtype = stream_reader, dtype
        _check_causal(handle)
    yield Progress(message=f"Loaded {name}: {handle.n_layers} layers on {handle.device}")
    yield Finished(result=handle)


def _handle(
    model: Any,
    tokenizer: Any,
    source: str,
    name: str,
    blocks: list[torch.nn.Module],
    memory_budget: int | None,
    plan: MemoryPlan | None,
    cache_folder: Path | None,
) -> ModelHandle:
    return ModelHandle(
        model=model,
        tokenizer=tokenizer,
        source=source,
        name=name,
        blocks=blocks,
        device=model.get_input_embeddings().weight.device,
        context_length=_context(model, tokenizer),
        head=separable_head(model, _probe_ids(model)),
        memory_budget=memory_budget,
        plan=plan,
        cache_folder=cache_folder,
    )


def load_model(
    source: str | LoadSpec = DEFAULT_MODEL,
    *,
    device: str | None = None,
    dtype: str = "auto",
    device_map: str | None = None,
    trust_remote_code: bool = False,
    memory_budget: int | None = None,
    stream: str = "auto",
    on_event: Callable[[LoadEvent], None] | None = None,
) -> ModelHandle:
    """iter_load to its end; on_event sees each event (the CLI prints the progress). source: a LoadSpec,
    or a source string whose spec the keywords make (a spec given whole ignores them)."""
    spec = (
        source
        if isinstance(source, LoadSpec)
        else LoadSpec(
            source=source,
            device=device,
            dtype=dtype,
            device_map=device_map,
            trust_remote_code=trust_remote_code,
            memory_budget=memory_budget,
            stream=stream,
        )
    )
    handle: ModelHandle = run_to_end(iter_load(spec), on_event)
    return handle


def _stream_map(device: str, plan: MemoryPlan | None) -> tuple[Any, dict[Any, int] | None]:
    """from_pretrained's device_map and max_memory for streaming: on a GPU what the plan leaves beside the analysis."""
    gpu = None
    if plan is not None:
        gpu = int(MARGIN * plan.available) - RUNTIME_BYTES - plan.analysis
    return streaming.device_map(device, gpu)


def _to_device(model: torch.nn.Module, name: str, device: str) -> None:
    try:
        model.to(device)
    except (RuntimeError, AssertionError, ValueError) as e:  # no CUDA, no such device, out of memory
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise HsviewerError(f"Could not put {name} on device {device!r}: {text}") from None


def _n_layers(config: Any) -> int | None:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return getattr(text, "num_hidden_layers", None)


def _context(model: Any, tokenizer: Any) -> int | None:
    config = model.config.get_text_config()
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and limit < 10**7 else None


def _probe_ids(model: Any) -> torch.Tensor:
    """Four token ids, enough to see how the model computes."""
    weight = model.get_input_embeddings().weight
    device = weight.device if weight.device.type != "meta" else "cpu"  # streamed: accelerate moves the inputs
    return torch.arange(4, device=device)[None] % weight.shape[0]


def _check_causal(handle: ModelHandle) -> None:
    """A decoder-only LM's output at a position never depends on later tokens."""
    ids = _probe_ids(handle.model)
    vocab = handle.model.get_input_embeddings().weight.shape[0]
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % vocab
    with torch.no_grad():  # one pass of both: a streamed model reads its weights once a pass
        both = handle.model(torch.cat([ids, changed]), use_cache=False).logits
    a, b = both[0, :-1], both[1, :-1]
    check_finite(handle, a, "on four tokens")
    if not torch.allclose(a, b, rtol=1e-3, atol=1e-4):
        raise HsviewerError(
            f"{handle.name} is not a causal (decoder-only) language model: its outputs depend on later tokens."
        )
