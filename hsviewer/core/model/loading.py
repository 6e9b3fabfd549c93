"""Load a local causal language model from one source string, offline first."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from hsviewer.core.choices import check_device
from hsviewer.core.errors import HsviewerError
from hsviewer.core.events import Finished, Progress, run_to_end
from hsviewer.core.model import default as default_model
from hsviewer.core.model import gguf_cache, streaming
from hsviewer.core.model.anatomy import find_blocks, separable_head
from hsviewer.core.model.default import DEFAULT_MODEL
from hsviewer.core.model.discovery.facts import describe, facts_of
from hsviewer.core.model.discovery.ollama import OLLAMA_PREFIX, resolve_ollama
from hsviewer.core.model.finite import check_finite
from hsviewer.core.model.memory import (
    DTYPES,
    MARGIN,
    PLAN_TOKENS,
    RUNTIME_BYTES,
    STREAMS,
    MemoryPlan,
    MemoryRefused,
    ModelFacts,
    available_bytes,
    check_analysis,
    plan_memory,
    plan_stream,
)

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # the bold torch puts in its messages


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


def iter_load(
    source: str = DEFAULT_MODEL,
    *,
    device: str | None = None,
    dtype: str = "auto",
    device_map: str | None = None,
    trust_remote_code: bool = False,
    memory_budget: int | None = None,
    stream: str = "auto",
) -> Generator[LoadEvent, None, None]:
    """Load 'default', a model folder, a .gguf file or a hub id from the local cache.

    Yields a Progress event before each step (the memory plan, a first dequantisation,
    reading the weights, moving them) and ends with Finished(handle). device: "cuda"
    when available, else "cpu", unless given; device_map="auto" spreads a model too
    large for one device over several (accelerate). dtype "auto": float32 when the plan
    fits, else bfloat16. memory_budget: the bytes to plan for instead of what is free.
    stream: "auto" streams the weights from disk a block at a time (core/streaming.py) when the
    plan does not fit in memory, "always" streams, "never" refuses a model that does not fit.
    """
    source = str(source).strip()
    if not source:
        raise HsviewerError("No model given.")
    _torch_dtype(dtype)  # a bad dtype is the caller's mistake, not a damaged cache to rebuild
    _check_stream(stream, device_map)
    device = check_device(device)  # meta, a typo: refused before anything is read
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    folder, name, gguf = _resolve(source)
    cache_folder = None
    plan = None if device_map else _plan(folder, gguf, dtype, device or _default_device(), memory_budget, stream=stream)
    if plan is not None:
        yield Progress(message=plan.describe())
        if not plan.fits:
            raise MemoryRefused(plan)
        dtype = plan.dtype
    streamed = plan.streamed if plan is not None else stream == "always"
    max_memory = None
    if streamed:
        dtype = dtype if dtype != "auto" else _compute_dtype(device or _default_device())
        device_map, max_memory = _stream_map(device or _default_device(), plan)
    converted = "bfloat16" if streamed else _converted_dtype(dtype)  # streamed: stored as compactly as it can be
    if gguf is not None:
        folder = yield from gguf_cache.cached_folder(gguf, dtype=converted)
        cache_folder = Path(folder)
    elif streamed:
        streaming.check_safetensors(local_model_folder(folder), name)
    yield Progress(message=f"Loading {name}" + (": the weights stay on disk, streamed a block at a time" * streamed))
    try:
        model, tokenizer = _load(folder, name, kwargs, dtype, device_map, max_memory)
    except HsviewerError:
        if gguf is None:
            raise
        yield Progress(message="The cached model is damaged: rebuilding it")
        folder = yield from gguf_cache.cached_folder(gguf, rebuild=True, dtype=converted)
        model, tokenizer = _load(folder, name, kwargs, dtype, device_map, max_memory)
    stream_reader = None
    if streamed:
        stored = plan.stored_dtype if plan is not None else dtype
        stream_reader = streaming.attach(model, stored)
    elif device_map is None:
        device = device or _default_device()
        yield Progress(message=f"Putting {name} on {device}")
        _to_device(model, name, device)
    model.eval()
    blocks = find_blocks(model, _n_layers(model.config))
    probes = streaming.first_block_only(blocks) if streamed else contextlib.nullcontext()
    with probes:
        handle = _handle(model, tokenizer, source, name, blocks, memory_budget, plan, cache_folder)
        if streamed:
            handle.device = torch.device(device or _default_device())
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
    source: str = DEFAULT_MODEL,
    *,
    device: str | None = None,
    dtype: str = "auto",
    device_map: str | None = None,
    trust_remote_code: bool = False,
    memory_budget: int | None = None,
    stream: str = "auto",
    on_event: Callable[[LoadEvent], None] | None = None,
) -> ModelHandle:
    """iter_load to its end; on_event sees each event (the CLI prints the progress)."""
    events = iter_load(
        source,
        device=device,
        dtype=dtype,
        device_map=device_map,
        trust_remote_code=trust_remote_code,
        memory_budget=memory_budget,
        stream=stream,
    )
    handle: ModelHandle = run_to_end(events, on_event)
    return handle


def plan_load(
    source: str = DEFAULT_MODEL,
    *,
    device: str | None = None,
    dtype: str = "auto",
    memory_budget: int | None = None,
    tokens: int = PLAN_TOKENS,
    stream: str = "auto",
) -> MemoryPlan | None:
    """The memory plan iter_load would follow (None when the model's files do not say its size)."""
    _torch_dtype(dtype)
    _check_stream(stream, None)
    folder, _, gguf = _resolve(str(source).strip())
    return _plan(folder, gguf, dtype, check_device(device) or _default_device(), memory_budget, tokens, stream)


def _plan(
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
    converting = gguf is not None and not gguf_cache.is_cached(gguf, _converted_dtype(dtype))
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
        dtype=dtype if dtype != "auto" else _compute_dtype(device),
        stored_dtype="bfloat16" if gguf is not None else _stored_dtype(found),
        device=device,
        available=available,
        budget_given=budget is not None,
    )
    if stream == "auto" and not streamed.fits:  # refused as in memory, saying that streaming would not do either
        return replace(plan, not_even_streamed=streamed)
    return streamed


def _check_stream(stream: str, device_map: str | None) -> None:
    if stream not in STREAMS:
        raise HsviewerError(f"Stream must be one of {', '.join(STREAMS)}; got {stream!r}.")
    if stream == "always" and device_map:
        raise HsviewerError("--stream always and --device-map place the weights each their own way: choose one.")


def _compute_dtype(device: str) -> str:
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


def _stream_map(device: str, plan: MemoryPlan | None) -> tuple[Any, dict[Any, int] | None]:
    """from_pretrained's device_map and max_memory for streaming: on a GPU what the plan leaves beside the analysis."""
    gpu = None
    if plan is not None:
        gpu = int(MARGIN * plan.available) - RUNTIME_BYTES - plan.analysis
    return streaming.device_map(device, gpu)


def _converted_dtype(dtype: str) -> str:
    """The precision a GGUF file is converted to: bfloat16 when loading in it, else float32."""
    return "bfloat16" if dtype == "bfloat16" else "float32"


def local_model_folder(folder: str) -> Path | None:
    """A model folder on disk: the folder itself, or a hub id's snapshot in the local cache."""
    if Path(folder).is_dir():
        return Path(folder)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(folder, local_files_only=True))
    except Exception:  # not in the cache, or not a hub id: no plan, as before
        return None


def _to_device(model: torch.nn.Module, name: str, device: str) -> None:
    try:
        model.to(device)
    except (RuntimeError, AssertionError, ValueError) as e:  # no CUDA, no such device, out of memory
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise HsviewerError(f"Could not put {name} on device {device!r}: {text}") from None


def _resolve(source: str) -> tuple[str, str, Path | None]:
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


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """transformers' and huggingface_hub's own log lines, loading reports and progress bars off, then restored.

    Their failures reach the user as one HsviewerError line; hsviewer's own progress is unaffected.
    """
    import logging

    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as tf_logging

    verbosity, bars = tf_logging.get_verbosity(), tf_logging.is_progress_bar_enabled()
    hub_logger = logging.getLogger("huggingface_hub")
    hub_level, hub_bars = hub_logger.level, not hub_utils.are_progress_bars_disabled()
    accelerate_logger = logging.getLogger("accelerate")  # "Some parameters are on the meta device": streaming
    accelerate_level = accelerate_logger.level
    tf_logging.set_verbosity_error()
    tf_logging.disable_progress_bar()
    hub_logger.setLevel(logging.ERROR)
    accelerate_logger.setLevel(logging.ERROR)
    hub_utils.disable_progress_bars()
    try:
        with warnings.catch_warnings():  # torch's own, as a refused pickle's protocol: the error says it all
            warnings.filterwarnings("ignore", category=UserWarning, module="torch")
            yield
    finally:
        tf_logging.set_verbosity(verbosity)
        if bars:
            tf_logging.enable_progress_bar()
        hub_logger.setLevel(hub_level)
        accelerate_logger.setLevel(accelerate_level)
        if hub_bars:
            hub_utils.enable_progress_bars()


@quiet_libraries()
def _load(
    folder: str, name: str, kwargs: dict[str, Any], dtype: str, device_map: Any, max_memory: dict[Any, int] | None
) -> tuple[Any, Any]:
    """The model (a transformers PreTrainedModel) and its tokenizer; max_memory goes with a device_map."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    trust = bool(kwargs.get("trust_remote_code"))

    config = _call(AutoConfig.from_pretrained, folder, name, **kwargs)
    if getattr(config, "is_encoder_decoder", False):
        raise HsviewerError(f"{name} is an encoder-decoder model; hsviewer needs a decoder-only causal LM.")
    torch_dtype = _torch_dtype(dtype)
    if device_map == streaming.DISK:  # streamed on the CPU: the skeleton and the files' index, nothing read yet
        local = local_model_folder(folder)
        if local is None:
            raise HsviewerError(f"{name} is not on this machine: streaming reads the model's own files.")
        model = _call(lambda _, **kw: streaming.from_files(local, config, torch_dtype, trust), folder, name)
        return model, _call(AutoTokenizer.from_pretrained, folder, name, **kwargs)
    extra: dict[str, Any] = {"device_map": device_map} if device_map else {}
    if max_memory:
        extra["max_memory"] = max_memory
    model = _call(AutoModelForCausalLM.from_pretrained, folder, name, dtype=torch_dtype, **extra, **kwargs)
    tokenizer = _call(AutoTokenizer.from_pretrained, folder, name, **kwargs)
    return model, tokenizer


def _torch_dtype(dtype: str) -> torch.dtype:
    """The torch dtype of float32, bfloat16 or float16; auto loads as float32 when no plan chose."""
    if dtype not in DTYPES:
        raise HsviewerError(f"Unknown dtype {dtype!r}: use {', '.join(DTYPES)}.")
    return getattr(torch, "float32" if dtype == "auto" else dtype)


def _call(loader: Callable, folder: str, name: str, **kwargs: Any) -> Any:
    """Run a from_pretrained, offline first, turning its exceptions into one plain message."""
    try:
        return loader(folder, local_files_only=True, **kwargs)
    except HsviewerError:
        raise
    except Exception as local_error:
        if Path(folder).is_dir() or os.environ.get("HF_HUB_OFFLINE") == "1":
            raise HsviewerError(_explain(name, local_error)) from None
    if not _hub_reachable():  # else huggingface_hub retries for half a minute before it gives up
        raise HsviewerError(
            f"{name} is not in the local Hugging Face cache, and huggingface.co cannot be reached from here. "
            "Copy the model folder to this machine and choose it instead."
        )
    try:
        return loader(folder, **kwargs)
    except Exception as e:
        raise HsviewerError(
            f"{name} is not in the local Hugging Face cache and could not be downloaded "
            f"({_explain(name, e)}). Copy the model folder to this machine and choose it instead."
        ) from None


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether a connection to the Hugging Face hub (or the endpoint HF_ENDPOINT names) opens at all."""
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def _explain(name: str, error: Exception) -> str:
    text = ANSI_ESCAPE.sub("", str(error)).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    if "Weights only load failed" in text:  # torch.load's refusal of a pickle with more than tensors in it
        return (
            f"Could not load {name}: its weights file is a pickle (pytorch_model.bin) holding objects other "
            "than tensors, and loading it could run code, so it is refused. Use the model's safetensors weights."
        )
    if "Unrecognized configuration class" in text or "does not recognize this architecture" in text:
        return f"{name} is not a causal language model transformers can load ({_cut(text, 200)})"
    if "ignore_mismatched_sizes" in text:
        return f"Could not load {name}: its weights do not have the sizes its config.json gives"
    if "tokenizer" in text.lower() and ("from one of" in text or "instantiate the backend tokenizer" in text):
        return (
            f"Could not load {name}'s tokenizer: its tokenizer files (tokenizer.json, tokenizer.model "
            "or vocab.json with merges.txt) are missing or unreadable"
        )
    return f"Could not load {name}: {_cut(text, 300)}"


def _cut(text: str, limit: int) -> str:
    """The text, or its first words up to `limit` characters and an ellipsis: never a word cut in two."""
    if len(text) <= limit:
        return text
    return text[: limit + 1].rsplit(" ", 1)[0].rstrip(" ,;:.") + "…"


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


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
