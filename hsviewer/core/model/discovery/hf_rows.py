"""A Hugging Face model folder as a listing's row, from its config.json and its safetensors headers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hsviewer.core.model.discovery.files import file_size, read_json
from hsviewer.core.model.discovery.found import FoundModel, first_int
from hsviewer.core.model.discovery.safetensors_header import safetensors_parameters

log = logging.getLogger(__name__)

WEIGHTS = ("*.safetensors", "*.bin", "*.index.json")
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
LEARNED_POSITIONS = {"gpt2", "gpt_neo", "opt", "gpt_bigcode", "biogpt", "xglm"}
# Small JSON files are read whole, but never more than this: a hostile or damaged one must not fill memory.
CONFIG_LIMIT = 16 << 20  # a config.json is a few kB
INDEX_LIMIT = 64 << 20  # a safetensors index names every tensor: a few MB for the largest models


def is_hf_folder(folder: Path) -> bool:
    """A config.json beside weights of a kind transformers reads."""
    return (folder / "config.json").is_file() and any(True for p in WEIGHTS for _ in folder.glob(p))


def hf_model(folder: Path, *, name: str, source: str, kind: str) -> FoundModel | None:
    """A Hugging Face model folder from its config.json and its safetensors headers; None when it
    is not a causal LM."""
    try:
        config = read_json(folder / "config.json", CONFIG_LIMIT, "a config.json")
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        return FoundModel(name=name, source=source, kind=kind, path=str(folder), problem=f"unreadable config.json: {e}")
    architectures = config.get("architectures") or []
    architecture = architectures[0] if architectures and isinstance(architectures[0], str) else None
    if config.get("is_encoder_decoder") or (architecture and not architecture.endswith(CAUSAL_SUFFIXES)):
        log.debug("Skipping %s: %s is not a causal LM", folder, architecture or "an encoder-decoder")
        return None
    text = config.get("text_config")
    if not isinstance(text, dict):
        text = {}
    sizes = {**config, **{k: v for k, v in text.items() if v is not None}}
    files = _weight_files(folder)
    problem = None
    try:
        parameters, dtypes = safetensors_parameters(files) if files else (None, [])
    except (OSError, ValueError) as e:
        parameters, dtypes, problem = None, [], f"unreadable safetensors header: {e}"
    estimated = parameters is None
    if estimated:
        parameters = estimate_parameters(sizes)
    weights = files or [p for pattern in ("*.bin", "*.pth") for p in folder.glob(pattern)]
    return FoundModel(
        name=name,
        source=source,
        kind=kind,
        path=str(folder),
        architecture=architecture,
        parameters=parameters,
        parameters_estimated=estimated and parameters is not None,
        layers=first_int(sizes, "num_hidden_layers", "n_layer", "num_layers"),
        hidden_size=first_int(sizes, "hidden_size", "n_embd", "d_model"),
        vocab_size=first_int(sizes, "vocab_size"),
        intermediate_size=first_int(sizes, "intermediate_size", "n_inner", "ffn_dim"),
        quantisation=_hf_quantisation(config, dtypes),
        file_bytes=sum(file_size(p) for p in weights) or None,
        problem=problem,
    )


def _weight_files(folder: Path) -> list[Path]:
    """The safetensors files that make up the model once: the index's shards, or model.safetensors."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = read_json(index, INDEX_LIMIT, "a safetensors index")["weight_map"]
            return [folder / name for name in sorted(set(weight_map.values()))]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    return sorted(p for p in folder.glob("*.safetensors") if not p.name.startswith("consolidated"))


def estimate_parameters(config: dict[str, Any]) -> int | None:
    """A decoder's weight count from its config's sizes: embeddings, attention, the MLP, the norms.

    Exact for Llama-style models (no biases); near for the others.
    """
    hidden = first_int(config, "hidden_size", "n_embd", "d_model")
    layers = first_int(config, "num_hidden_layers", "n_layer", "num_layers")
    vocab = first_int(config, "vocab_size")
    if not (hidden and layers and vocab):
        return None
    heads = first_int(config, "num_attention_heads", "n_head", "num_heads") or 1
    kv_heads = first_int(config, "num_key_value_heads") or heads
    head_dim = first_int(config, "head_dim") or hidden // heads
    inner = first_int(config, "intermediate_size", "n_inner", "ffn_dim") or 4 * hidden
    model_type = str(config.get("model_type", ""))
    act = str(config.get("hidden_act") or config.get("hidden_activation") or "")
    gated = act in ("silu", "swish", "swiglu") or model_type.startswith("gemma")
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    mlp = (3 if gated else 2) * hidden * inner
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings", True) else 2)
    if model_type in LEARNED_POSITIONS:
        embeddings += hidden * (first_int(config, "n_positions", "max_position_embeddings") or 0)
    return embeddings + layers * (attention + mlp + 2 * hidden) + hidden


def _hf_quantisation(config: dict[str, Any], dtypes: list[str]) -> str | None:
    quant = config.get("quantization_config")
    if isinstance(quant, dict) and quant.get("quant_method"):
        bits = quant.get("bits") or quant.get("w_bit")
        return f"{quant['quant_method']} {bits}-bit" if bits else str(quant["quant_method"])
    dtype = config.get("torch_dtype") or config.get("dtype")
    if isinstance(dtype, str) and dtype:
        return dtype
    if dtypes:
        return max(set(dtypes), key=dtypes.count)
    return None
