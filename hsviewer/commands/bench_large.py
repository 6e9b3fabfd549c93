"""`hsviewer bench --large-gguf PATH`: peak resident memory of a multi-GB GGUF against the memory plan.

Writes (once, if PATH is missing) a random model of TinyLlama-1.1B's shape quantised Q8_0 (about
1.2 GB), tensor by tensor, and measures, each in a fresh process with an empty or a warm cache
folder of its own: the first conversion + load in float32 and in bfloat16, then a sweep of the
text with the cached model in each precision. Beside each, the plan's peak for the same case.
Run by hand, never as a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

# TinyLlama-1.1B's shape
HIDDEN, LAYERS, HEADS, KV_HEADS, INTERMEDIATE, VOCAB, CONTEXT = 2048, 22, 32, 4, 5632, 32_000, 2048
MERGES = ["t h", "h e", "th e", "Ġ t", "Ġt he", "a n", "i n", "e r"]


def _vocabulary() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tokens = [bytes_to_unicode()[b] for b in range(256)] + [m.replace(" ", "") for m in MERGES]
    tokens += [f"<|extra_{i}|>" for i in range(VOCAB - len(tokens) - 1)]
    return [*tokens, "<|endoftext|>"]


def add_byte_tokenizer(writer: Any, tokens: list[str]) -> None:
    """A byte-level BPE tokenizer as llama.cpp writes a GPT-2 style one: MERGES, and the last
    token (end of text) for beginning, end and padding."""
    import gguf

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.NORMAL] * (len(tokens) - 1) + [gguf.TokenType.CONTROL])
    writer.add_token_merges(MERGES)
    for add in (writer.add_bos_token_id, writer.add_eos_token_id, writer.add_pad_token_id):
        add(len(tokens) - 1)


def _shapes() -> list[tuple[str, tuple[int, ...]]]:
    kv = HIDDEN // HEADS * KV_HEADS
    shapes: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (VOCAB, HIDDEN))]
    for i in range(LAYERS):
        shapes += [
            (f"blk.{i}.attn_norm.weight", (HIDDEN,)),
            (f"blk.{i}.attn_q.weight", (HIDDEN, HIDDEN)),
            (f"blk.{i}.attn_k.weight", (kv, HIDDEN)),
            (f"blk.{i}.attn_v.weight", (kv, HIDDEN)),
            (f"blk.{i}.attn_output.weight", (HIDDEN, HIDDEN)),
            (f"blk.{i}.ffn_norm.weight", (HIDDEN,)),
            (f"blk.{i}.ffn_gate.weight", (INTERMEDIATE, HIDDEN)),
            (f"blk.{i}.ffn_up.weight", (INTERMEDIATE, HIDDEN)),
            (f"blk.{i}.ffn_down.weight", (HIDDEN, INTERMEDIATE)),
        ]
    return [*shapes, ("output_norm.weight", (HIDDEN,)), ("output.weight", (VOCAB, HIDDEN))]


def write_large_gguf(path: Path) -> None:
    """Write the random Q8_0 model tensor by tensor: only one float32 tensor is ever in memory."""
    import gguf

    q8 = gguf.GGMLQuantizationType.Q8_0
    tokens = _vocabulary()
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("random-tinyllama-1.1b-shape")
    writer.add_block_count(LAYERS)
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(INTERMEDIATE)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    add_byte_tokenizer(writer, tokens)
    shapes = _shapes()
    for name, shape in shapes:  # the tensor infos first; the data follows, one tensor at a time
        if len(shape) == 2:
            byte_shape = (shape[0], shape[1] // 32 * 34)  # Q8_0: 32 weights in 34 bytes
            writer.add_tensor_info(name, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), raw_dtype=q8)
        else:
            writer.add_tensor_info(name, shape, np.dtype(np.float32), int(np.prod(shape)) * 4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(0)
    for _name, shape in shapes:  # in the order of the infos
        if len(shape) == 2:
            weights = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
            writer.write_tensor_data(gguf.quantize(weights, q8))
        else:
            writer.write_tensor_data(np.ones(shape, dtype=np.float32))
    writer.close()


CONVERT_SCRIPT = """
import json, resource, time
t0 = time.perf_counter()
from hsviewer.core import load_model
h = load_model({path!r}, device="cpu", dtype={dtype!r})
print(json.dumps({{"seconds": time.perf_counter() - t0,
                   "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""

CONVERT_ONLY_SCRIPT = """
import json, resource, time
from pathlib import Path
import torch, transformers  # the runtime a load imports
from hsviewer.core.model import gguf_cache
t0 = time.perf_counter()
for _ in gguf_cache.cached_folder(Path({path!r}), dtype={dtype!r}):
    pass
print(json.dumps({{"seconds": time.perf_counter() - t0,
                   "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""

SWEEP_SCRIPT = """
import json, resource, time
from hsviewer.core import layer_sweep, load_model
from hsviewer.core.passes.text import tokenize
h = load_model({path!r}, device="cpu", dtype={dtype!r})
t0 = time.perf_counter()
layer_sweep(h, {text!r})
print(json.dumps({{"seconds": time.perf_counter() - t0, "tokens": len(tokenize(h, {text!r})),
                   "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""


def run_large_bench(path: str, text: str, dtypes: tuple[str, ...] = ("float32", "bfloat16")) -> int:
    """Print: case, measured peak, planned peak, ratio, seconds; write the GGUF first if `path` is missing.

    The plans are those `hsviewer sweep --plan` would print for the sweep's text (its token count as the
    sweep counted it): with the conversion ahead for the first-load rows, with the model cached for the sweeps.
    """
    from hsviewer.core.model.load_plan import plan_load
    from hsviewer.core.model.load_spec import LoadSpec
    from hsviewer.core.model.memory import RUNTIME_BYTES

    gguf_path = Path(path)
    if not gguf_path.exists():
        start = time.perf_counter()
        write_large_gguf(gguf_path)
        print(f"wrote {gguf_path} ({gguf_path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - start:.0f} s")
    measured: dict[tuple[str, str], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(dir=gguf_path.parent) as cache:
        env = {"HSVIEWER_CACHE_DIR": cache}
        for dtype in dtypes:
            with tempfile.TemporaryDirectory(dir=gguf_path.parent) as alone:
                script = CONVERT_ONLY_SCRIPT.format(path=str(gguf_path), dtype=dtype)
                measured["alone", dtype] = _child(script, {"HSVIEWER_CACHE_DIR": alone})
            print(f"first conversion alone, {dtype}: {measured['alone', dtype]}", flush=True)
            measured["convert", dtype] = _child(CONVERT_SCRIPT.format(path=str(gguf_path), dtype=dtype), env)
            print(f"first conversion + load, {dtype}: {measured['convert', dtype]}", flush=True)
        for dtype in dtypes:
            measured["sweep", dtype] = _child(SWEEP_SCRIPT.format(path=str(gguf_path), dtype=dtype, text=text), env)
            print(f"sweep, {dtype}: {measured['sweep', dtype]}", flush=True)
        tokens = measured["sweep", dtypes[0]]["tokens"]
        with tempfile.TemporaryDirectory(dir=gguf_path.parent) as empty, mock.patch.dict(os.environ):
            for (case, dtype), figures in measured.items():
                os.environ["HSVIEWER_CACHE_DIR"] = cache if case == "sweep" else empty
                figures["plan"] = plan_load(LoadSpec(source=str(gguf_path), dtype=dtype), tokens=tokens)
    print(f"{'case':<40} {'measured':>9} {'planned':>9} {'ratio':>6} {'seconds':>8}  plan")
    for (case, dtype), figures in measured.items():
        plan = figures["plan"]
        label = {
            "alone": f"first conversion alone, {dtype}",
            "convert": f"first conversion + load, {dtype}",
            "sweep": f"sweep, {tokens} tokens, {dtype}",
        }[case]
        planned = (RUNTIME_BYTES + plan.conversion if case == "alone" else plan.peak) if plan else 0
        ratio = figures["peak_rss"] / planned if planned else float("nan")
        print(
            f"{label:<40} {figures['peak_rss'] / 1e9:>7.2f}GB {planned / 1e9:>7.2f}GB {ratio:>6.2f} "
            f"{figures['seconds']:>8.0f}  {plan.describe() if plan else '-'}"
        )
    return 0


def _child(script: str, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])
