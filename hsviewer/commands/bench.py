"""`hsviewer bench`: the figures quoted in the README's Performance section.

Run by hand, never as a test. Each figure comes from the same machine and, where a
ratio is given, from the same process.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hsviewer.core.resources import default_image

LOAD_SCRIPT = """
import json, time
t0 = time.perf_counter()
import torch, transformers
t1 = time.perf_counter()
from hsviewer.core import load_model
h = load_model({model!r}, device="cpu")
t2 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "load_s": t2 - t1}}))
"""

SWEEP_MEMORY_SCRIPT = """
import json, resource
from hsviewer.core import layer_sweep, load_model
h = load_model({model!r}, device="cpu")
layer_sweep(h, {text!r})
print(json.dumps({{"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run_bench(model: str, text: str, with_gui: bool = True, device: str = "cpu", dtype: str = "auto") -> int:
    """Print one table of every figure; return 0. device ("cpu", "cuda", "auto") and dtype are
    the sweep timings'; load times, memory and the GUI probe are the CPU's."""
    rows: list[tuple[str, str]] = [("machine", _machine())]
    rows += _load_times(model)
    rows += _sweep_times(model, text, device, dtype)
    rows += _image_latency()
    rows.append(
        (
            "sweep peak resident memory",
            f"{_child(SWEEP_MEMORY_SCRIPT.format(model=model, text=text))['peak_rss_mb']:.0f} MB",
        )
    )
    if with_gui:
        from hsviewer.gui.stall_probe import longest_stall_during_sweep

        rows.append(
            ("GUI longest event-loop stall during a sweep", f"{longest_stall_during_sweep(model, text) * 1000:.0f} ms")
        )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def _load_times(model: str) -> list[tuple[str, str]]:
    """First load into an empty cache (dequantising a GGUF), then a cached load, each in a fresh process."""
    with tempfile.TemporaryDirectory() as cache:
        env = {"HSVIEWER_CACHE_DIR": cache}
        first = _child(LOAD_SCRIPT.format(model=model), env)
        cached = _child(LOAD_SCRIPT.format(model=model), env)
    return [
        ("import torch + transformers", f"{cached['import_s']:.2f} s"),
        ("model load, first (empty cache)", f"{first['load_s']:.2f} s"),
        ("model load, cached", f"{cached['load_s']:.2f} s"),
    ]


def _sweep_times(model: str, text: str, device: str = "cpu", dtype: str = "auto") -> list[tuple[str, str]]:
    """Notebook-style against prefix-sharing sweeps on the device; on a GPU also the batched
    sweep, checked against a CPU run of the same model and precision."""
    from hsviewer.core import layer_sweep, load_model

    handle = load_model(model, device=None if device == "auto" else device, dtype=dtype)
    where = f"{handle.device}, {handle.dtype}"
    warm = layer_sweep(handle, text)  # warm-up (allocator, kernels): the default sweep on this device
    hooks = _best_of(2, lambda: layer_sweep(handle, text, method="hooks"))
    prefix = _best_of(2, lambda: layer_sweep(handle, text, batch=1))
    rows = [
        (f"sweep, notebook-style (hook, full pass per layer; {where})", f"{hooks:.2f} s"),
        (f"sweep, prefix-sharing ({where})", f"{prefix:.2f} s"),
        ("speed-up", f"{hooks / prefix:.2f}x"),
    ]
    if handle.device.type == "cpu":
        rows += _thread_times(handle, text)
    else:
        rows += _batched_times(handle, text, hooks, prefix)
        cpu = layer_sweep(load_model(model, device="cpu", dtype=handle.dtype), text)
        rows += sweep_agreement(warm, cpu)
    block, head = _pass_costs(handle, text)
    n = handle.n_layers
    # Per layer, a full pass costs n blocks + the head; a tail (n - 1 - L) blocks + the head.
    bound = (n * block + head) / ((n - 1) / 2 * block + head)
    return [
        *rows,
        ("one decoder block / LM head and embeddings", f"{block * 1000:.1f} ms / {head * 1000:.1f} ms"),
        ("speed-up bound from those costs", f"{bound:.2f}x"),
    ]


def _thread_times(handle: Any, text: str) -> list[tuple[str, str]]:
    """The CPU sweep with 1 thread and with 2 (--threads): on cores that other work shares,
    torch's own choice of one thread per core can be several times slower than fewer."""
    from hsviewer.core import layer_sweep
    from hsviewer.core.linalg.threads import use_threads

    rows = []
    try:
        for threads in (1, 2):
            use_threads(threads)
            seconds = _best_of(2, lambda: layer_sweep(handle, text, batch=1))
            rows.append((f"sweep, prefix-sharing, --threads {threads}", f"{seconds:.2f} s"))
    finally:
        use_threads(None)
    return rows


def _batched_times(handle: Any, text: str, hooks: float, prefix: float) -> list[tuple[str, str]]:
    """The default sweep on a GPU: several layers' tails a pass, as many as its free memory holds."""
    import torch

    from hsviewer.core import layer_sweep
    from hsviewer.core.analyses.sweep.run import default_batch
    from hsviewer.core.passes.text import tokenize

    batch = default_batch(handle, len(tokenize(handle, text)))
    torch.cuda.reset_peak_memory_stats(handle.device)
    batched = _best_of(2, lambda: layer_sweep(handle, text))
    peak = torch.cuda.max_memory_allocated(handle.device)
    return [
        (f"sweep, batched (up to {batch} layers a pass)", f"{batched:.2f} s"),
        ("speed-up over notebook-style / one layer a pass", f"{hooks / batched:.2f}x / {prefix / batched:.2f}x"),
        ("batched sweep peak GPU memory allocated", f"{peak / 2**20:.0f} MB"),
    ]


def sweep_agreement(sweep: Any, cpu: Any) -> list[tuple[str, str]]:
    """Whether a sweep chose the CPU run's components at every layer, and how far its losses are."""
    differ = [a.layer for a, b in zip(sweep.layers, cpu.layers, strict=True) if a.components != b.components]
    worst = max(abs(a.loss - b.loss) / abs(b.loss) for a, b in zip(sweep.layers, cpu.layers, strict=True))
    return [
        ("components equal to the CPU run's", "yes" if not differ else f"no, at layers {differ}"),
        ("largest relative loss difference from the CPU run", f"{worst:.1e}"),
    ]


def _pass_costs(handle: Any, text: str) -> tuple[float, float]:
    """Seconds for one decoder block, and for everything else in a pass (mostly the LM head)."""
    from hsviewer.core.analyses.sweep.run import tail_states
    from hsviewer.core.model.anatomy import block_hidden
    from hsviewer.core.passes.clean import CleanReference, clean_forward, first_row, pass_states
    from hsviewer.core.passes.text import tokenize

    ids = tokenize(handle, text).ids
    clean = clean_forward(handle, ids, raw=True)
    last = handle.n_layers - 1
    reference = CleanReference(handle, clean.states, ids)
    full = _best_of(5, lambda: reference.compare(pass_states(handle, ids)[0]))
    tail = first_row(block_hidden(clean.hidden[last]))
    head = _best_of(5, lambda: reference.compare(tail_states(handle, ids, clean, last, tail)))
    return (full - head) / last, head


def _image_latency() -> list[tuple[str, str]]:
    """Live-slider update cost for the 1000 x 872 image: ImageSVD.preview at several k."""
    from hsviewer.core import image_svd

    result = image_svd(default_image(), downsample=1)
    n = len(result.s)
    rows = []
    for label, k in (("1", 1), ("10%", n // 10), ("50%", n // 2), ("90%", 9 * n // 10), ("full", n)):
        result.preview(k)
        seconds = _best_of(5, functools.partial(result.preview, k))
        rows.append(
            (
                f"image reconstruction {result.image.shape[1]}x{result.image.shape[0]}, k = {label} ({k})",
                f"{seconds * 1000:.1f} ms",
            )
        )
    return rows


def _best_of(n: int, work: Callable[[], Any]) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return float(np.min(times))


def _child(script: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, **(env or {})}, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
