"""Tiny GGUF files written the way llama.cpp's converter writes them, from tiny random transformers models.

`write_tiny_gguf(path, arch, kind)` writes a model of architecture llama, qwen2, gpt2 or phi3 with its weights in
F32, F16 or Q8_0 (the 2-D weights whose rows are a multiple of 32; the rest stay F32, as llama.cpp does), a
byte-level BPE tokenizer of 256 byte tokens and a few merges, and the metadata transformers' GGUF reader expects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hsviewer.commands.bench_large import MERGES, add_byte_tokenizer

HIDDEN = 64  # a multiple of 32: every weight row can be Q8_0
GGUF_ARCH = {"llama": "llama", "qwen2": "qwen2", "gpt2": "gpt2", "phi3": "phi3"}


def byte_tokens() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return [bytes_to_unicode()[b] for b in range(256)]


def vocabulary() -> list[str]:
    tokens = byte_tokens()
    for merge in MERGES:
        tokens.append(merge.replace(" ", ""))
    return [*tokens, "<|endoftext|>"]


def tiny_config(arch: str, vocab_size: int, tied: bool):
    import transformers as tf

    common = {"vocab_size": vocab_size, "bos_token_id": vocab_size - 1, "eos_token_id": vocab_size - 1}
    if arch == "llama":
        return tf.LlamaConfig(
            **common, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=96, max_position_embeddings=128, tie_word_embeddings=tied, rms_norm_eps=1e-5,
        )  # fmt: skip
    if arch == "qwen2":
        return tf.Qwen2Config(
            **common, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=96, max_position_embeddings=128, tie_word_embeddings=tied, rms_norm_eps=1e-6,
        )  # fmt: skip
    if arch == "phi3":
        return tf.Phi3Config(
            **common, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
            intermediate_size=96, max_position_embeddings=128, tie_word_embeddings=tied, rms_norm_eps=1e-5,
            original_max_position_embeddings=128, pad_token_id=None,
        )  # fmt: skip
    if arch == "gpt2":
        return tf.GPT2Config(**common, n_embd=HIDDEN, n_layer=2, n_head=4, n_positions=1024, tie_word_embeddings=tied)
    # transformers reads a GPT-2 GGUF's context_length as n_ctx and keeps n_positions at 1024
    raise ValueError(arch)


def _permute(weights: np.ndarray, n_head: int, n_head_kv: int) -> np.ndarray:
    """llama.cpp's q/k permutation for llama (transformers' LlamaTensorProcessor undoes it)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def gguf_tensors(model, arch: str) -> dict[str, np.ndarray]:
    """The model's weights under llama.cpp's names and layouts, float32."""
    import gguf

    config = model.config
    arch_enum = next(key for key, name in gguf.MODEL_ARCH_NAMES.items() if name == GGUF_ARCH[arch])
    names = gguf.get_tensor_name_map(arch_enum, config.num_hidden_layers)
    out: dict[str, np.ndarray] = {}
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        base, suffix = hf_name.rsplit(".", 1)
        name = names.get_name(base)
        if name is None:
            raise ValueError(f"no GGUF name for {hf_name}")
        data = tensor.detach().float().numpy().copy()
        if arch == "llama" and name.endswith("attn_q"):
            data = _permute(data, config.num_attention_heads, config.num_attention_heads)
        if arch == "llama" and name.endswith("attn_k"):
            data = _permute(data, config.num_attention_heads, config.num_key_value_heads)
        if arch == "gpt2" and name.endswith(("attn_qkv", "attn_output", "ffn_up", "ffn_down")) and suffix == "weight":
            data = data.T.copy()
        out[f"{name}.{suffix}"] = data
    return out


def write_tiny_gguf(path: Path, arch: str = "llama", kind: str = "F32", tied: bool = True, seed: int = 0):
    """Write a tiny random model of `arch` as GGUF with weights in `kind` (F32, F16, Q8_0); return the HF model."""
    import gguf
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    tokens = vocabulary()
    config = tiny_config(arch, len(tokens), tied)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # norms of ones and zero biases would hide a mix-up of names
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.copy_(torch.randn_like(param) * 0.1 + (1.0 if name.endswith("weight") else 0.0))

    writer = gguf.GGUFWriter(str(path), GGUF_ARCH[arch])
    writer.add_name(f"tiny-{arch}")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(1024 if arch == "gpt2" else 128)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(getattr(config, "intermediate_size", None) or 4 * HIDDEN)
    writer.add_head_count(config.num_attention_heads)
    if arch == "gpt2":
        writer.add_layer_norm_eps(config.layer_norm_epsilon)
    else:
        writer.add_head_count_kv(config.num_key_value_heads)
        writer.add_layer_norm_rms_eps(config.rms_norm_eps)
        writer.add_rope_freq_base(10000.0)
        writer.add_rope_dimension_count(HIDDEN // config.num_attention_heads)
    file_type = {"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16}.get(
        kind, gguf.LlamaFileType.MOSTLY_Q8_0
    )
    writer.add_file_type(file_type)
    add_byte_tokenizer(writer, tokens)
    for name, data in gguf_tensors(model, arch).items():
        if kind == "F16" and data.ndim == 2:
            writer.add_tensor(name, data.astype(np.float16))
        elif kind == "Q8_0" and data.ndim == 2 and data.shape[-1] % 32 == 0:
            q8 = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(name, gguf.quantize(data, q8), raw_dtype=q8)
        else:
            writer.add_tensor(name, data.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model
