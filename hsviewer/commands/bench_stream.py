"""`hsviewer bench --large`: a Llama-3-8B-shaped bf16 model swept in a 6 GB budget, streamed from disk.

Writes once, into the user cache (hsviewer_cache/bench/llama3-8b-shape), a model folder of Llama 3 8B's
shape with random bf16 weights (16 GB on disk), tensor by tensor so that one tensor is in memory at a
time; then, each in a fresh process, a sweep of a 32-token text with --memory-budget 6GB (streamed),
printing the peak resident memory, the time and the bytes read from the model's files, and the same
sweep in memory when this machine has the memory for it. Then the default model streamed against in
memory (the time ratio, with a warm page cache). Run by hand, never as a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Llama 3 8B's shape
HIDDEN, LAYERS, HEADS, KV_HEADS, INTERMEDIATE, VOCAB, CONTEXT = 4096, 32, 32, 8, 14336, 128_256, 8192
SHARD_BYTES = 2 * 10**9  # shards of at most 2 GB: the build holds one in memory
TEXT = "the museum of modern art in Amsterdam."  # 32 tokens with the byte-level tokenizer below
MERGES = ["t h", "h e", "th e", "Ġ t", "Ġt he", "a n", "i n", "e r"]


def large_folder() -> Path:
    """Where the benchmark's model folder lives: in the user cache, beside the converted GGUF models."""
    from hsviewer.core.model.gguf_cache import cache_root

    return cache_root() / "bench" / "llama3-8b-shape"


def _config() -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "vocab_size": VOCAB,
        "max_position_embeddings": CONTEXT,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "bos_token_id": VOCAB - 1,
        "eos_token_id": VOCAB - 1,
        "torch_dtype": "bfloat16",
    }


def _shapes() -> list[tuple[str, tuple[int, ...]]]:
    kv = HIDDEN // HEADS * KV_HEADS
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        shapes += [
            (p + "input_layernorm.weight", (HIDDEN,)),
            (p + "self_attn.q_proj.weight", (HIDDEN, HIDDEN)),
            (p + "self_attn.k_proj.weight", (kv, HIDDEN)),
            (p + "self_attn.v_proj.weight", (kv, HIDDEN)),
            (p + "self_attn.o_proj.weight", (HIDDEN, HIDDEN)),
            (p + "post_attention_layernorm.weight", (HIDDEN,)),
            (p + "mlp.gate_proj.weight", (INTERMEDIATE, HIDDEN)),
            (p + "mlp.up_proj.weight", (INTERMEDIATE, HIDDEN)),
            (p + "mlp.down_proj.weight", (HIDDEN, INTERMEDIATE)),
        ]
    return [*shapes, ("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]


def _write_tokenizer(folder: Path) -> None:
    """A byte-level BPE tokenizer over the whole vocabulary (bytes, a few merges, filler tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tokens = [bytes_to_unicode()[b] for b in range(256)] + [m.replace(" ", "") for m in MERGES]
    tokens += [f"<|extra_{i}|>" for i in range(VOCAB - len(tokens) - 1)]
    vocab = {t: i for i, t in enumerate([*tokens, "<|endoftext|>"])}
    bpe = Tokenizer(models.BPE(vocab, [(a, b) for a, b in (m.split() for m in MERGES)]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    end = "<|endoftext|>"
    PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=end, bos_token=end, pad_token=end).save_pretrained(folder)


def build_large_folder(folder: Path) -> None:
    """The random bf16 model, tensor by tensor into 5 GB shards, with progress; written under a
    temporary name and renamed at the end, so an interrupted build leaves no folder that looks whole."""
    import shutil

    import torch
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "config.json").write_text(json.dumps(_config(), indent=2))
    _write_tokenizer(tmp)
    shapes = _shapes()
    total = sum(2 * _numel(s) for _, s in shapes)
    generator = torch.Generator().manual_seed(0)
    shard: dict[str, torch.Tensor] = {}
    weight_map: dict[str, str] = {}
    files: list[str] = []
    done = 0
    start = time.perf_counter()

    def flush() -> None:
        name = f"model-{len(files) + 1:05d}.safetensors"
        save_file(shard, str(tmp / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
        files.append(name)
        shard.clear()

    for i, (name, shape) in enumerate(shapes):
        if len(shape) == 1:
            tensor = torch.ones(shape, dtype=torch.bfloat16)
        else:
            tensor = (torch.randn(shape, generator=generator) * 0.02).to(torch.bfloat16)
        if shard and sum(t.nbytes for t in shard.values()) + tensor.nbytes > SHARD_BYTES:
            flush()
        shard[name] = tensor
        done += tensor.nbytes
        if i % 9 == 0 or i == len(shapes) - 1:
            print(f"building {folder.name}: {done / 1e9:.2f} of {total / 1e9:.2f} GB "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    flush()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


SWEEP_SCRIPT = """
import json, resource, time
from hsviewer.core import iter_sweep, load_model
from hsviewer.core.model.memory import parse_size
from hsviewer.core.model.streaming import bytes_read
from hsviewer.core.passes.text import tokenize
budget = {budget!r}
t0 = time.perf_counter()
def say(e):
    text = getattr(e, "message", "") or (f"layer {{e.result.layer}} done" if type(e).__name__ == "LayerDone" else "")
    print(f"{{time.perf_counter() - t0:7.1f}} s  {{text}}", flush=True)
h = load_model({path!r}, device="cpu", stream={stream!r}, memory_budget=parse_size(budget) if budget else None,
               on_event=say)
loaded, read0 = time.perf_counter() - t0, bytes_read()
t0 = time.perf_counter()
for event in iter_sweep(h, {text!r}):
    say(event)
print(json.dumps({{"seconds": time.perf_counter() - t0, "load_seconds": loaded, "tokens": len(tokenize(h, {text!r})),
                   "bytes_read": bytes_read() - read0, "load_bytes_read": read0, "streamed": h.streamed,
                   "plan": h.plan.describe() if h.plan else "",
                   "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""


def run_stream_bench(text: str | None = None, budget: str = "6GB", in_memory: bool | None = None) -> int:
    """Build the 8B folder if missing, sweep it streamed in `budget` (and in memory when it fits), then the
    default model streamed and in memory; print each case's peak, time and bytes read."""
    import psutil

    folder = large_folder()
    if not (folder / "model.safetensors.index.json").is_file():
        build_large_folder(folder)
    text = text or TEXT
    cases = [("8B-shape streamed, budget " + budget, str(folder), "always", budget)]
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    if in_memory if in_memory is not None else psutil.virtual_memory().available > 2.5 * size:
        cases.append(("8B-shape in memory (bfloat16)", str(folder), "never", ""))
    cases += [("default model in memory", "default", "never", ""), ("default model streamed", "default", "always", "")]
    results = {}
    for label, path, stream, case_budget in cases:
        script = SWEEP_SCRIPT.format(path=path, stream=stream, budget=case_budget, text=text)
        results[label] = figures = _child(script)
        print(
            f"{label}: {figures['tokens']} tokens, sweep {figures['seconds']:.1f} s "
            f"(load {figures['load_seconds']:.1f} s), "
            f"peak resident {figures['peak_rss'] / 1e9:.2f} GB, read {figures['bytes_read'] / 1e9:.2f} GB in the "
            f"sweep ({figures['load_bytes_read'] / 1e9:.2f} GB loading)\n    {figures['plan']}",
            flush=True,
        )
    ratio = results["default model streamed"]["seconds"] / results["default model in memory"]["seconds"]
    print(f"default model: streamed / in memory sweep time = {ratio:.2f}x")
    return 0


def _child(script: str) -> dict[str, Any]:
    """Run the script in a fresh process (its own peak), echoing its progress lines as they come."""
    child = subprocess.Popen(
        [sys.executable, "-c", script], env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stderr is not None
    last = ""
    for line in child.stdout:
        last = line.strip() or last
        if not line.startswith("{"):
            print("    " + line.rstrip(), flush=True)
    if child.wait() != 0:
        raise RuntimeError(child.stderr.read()[-3000:])
    return json.loads(last)
