"""CUDA sweeps equal CPU ones (skipped without CUDA; run them on a machine with a GPU)."""

from __future__ import annotations

import pytest
import torch

from hsviewer.core import Reduction, layer_sweep, load_model
from tests.support import TEXT
from tests.tiny_models import ARCHITECTURES

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def assert_same_sweep(gpu, cpu) -> None:
    assert [r.components for r in gpu.layers] == [r.components for r in cpu.layers]
    assert gpu.clean_loss == pytest.approx(cpu.clean_loss, rel=1e-4)
    for a, b in zip(gpu.layers, cpu.layers, strict=True):
        assert a.loss == pytest.approx(b.loss, rel=1e-4, abs=1e-5)
        assert a.kl_divergence == pytest.approx(b.kl_divergence, rel=1e-3, abs=1e-5)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_cuda_sweep_equals_cpu_sweep(arch, tiny_folder):
    folder = str(tiny_folder(arch))
    cpu = layer_sweep(load_model(folder, device="cpu"), TEXT, Reduction(90.0))
    gpu_handle = load_model(folder, device="cuda")
    assert gpu_handle.device.type == "cuda"
    assert_same_sweep(layer_sweep(gpu_handle, TEXT, Reduction(90.0)), cpu)  # batched: as many layers as fit
    assert_same_sweep(layer_sweep(gpu_handle, TEXT, Reduction(90.0), batch=1), cpu)


@pytest.mark.default_model
def test_default_model_cuda_sweep_equals_cpu_sweep():
    from hsviewer.core.resources import default_text

    text = default_text()
    cpu = layer_sweep(load_model("default", device="cpu"), text)
    assert_same_sweep(layer_sweep(load_model("default", device="cuda"), text), cpu)


def test_cuda_batch_fills_free_memory_up_to_every_layer(tiny_folder):
    from hsviewer.core.analyses.sweep.run import default_batch

    handle = load_model(str(tiny_folder("gpt_neox")), device="cuda")
    assert default_batch(handle, 20) == handle.n_layers  # a tiny model's rows fit many times over


@pytest.mark.parametrize("arch", ["llama", "gpt_neo"])
def test_cuda_bench_times_the_batched_sweep_and_agrees_with_the_cpu(arch, tiny_folder):
    from hsviewer.commands.bench import _sweep_times

    rows = dict(_sweep_times(str(tiny_folder(arch)), TEXT, "cuda", "float32"))
    assert rows["components equal to the CPU run's"] == "yes"
    assert float(rows["largest relative loss difference from the CPU run"]) < 1e-4
    assert any(name.startswith("sweep, batched (up to") for name in rows)


@pytest.mark.default_model
def test_default_model_cuda_bench_agrees_with_the_cpu():
    from hsviewer.commands.bench import _sweep_times
    from hsviewer.core.resources import default_text

    rows = dict(_sweep_times("default", default_text(), "cuda", "float32"))
    assert rows["components equal to the CPU run's"] == "yes"
    assert float(rows["largest relative loss difference from the CPU run"]) < 1e-3
