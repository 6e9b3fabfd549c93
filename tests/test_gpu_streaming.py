"""On CUDA, a model streamed over GPU and CPU memory (accelerate's max_memory) sweeps as the model loaded
whole on the GPU does (skipped without CUDA; run them on a machine with a GPU)."""

from __future__ import annotations

import pytest
import torch

from hsviewer.core import Reduction, layer_sweep, load_model, reduce_layer
from hsviewer.core.model import loading as models
from tests.support import TEXT
from tests.tiny_models import ARCHITECTURES

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.fixture
def half_on_the_gpu(monkeypatch):
    """Streaming's max_memory holding about half the model on the GPU, the rest in CPU memory."""

    def stream_map(device, plan):
        return "auto", {0: int(plan.weights / 2), "cpu": 8 * 2**30}

    monkeypatch.setattr(models, "_stream_map", stream_map)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_streamed_cuda_sweep_equals_in_memory(arch, tiny_folder, half_on_the_gpu):
    folder = str(tiny_folder(arch))
    whole = load_model(folder, device="cuda", dtype="float32", stream="never")
    streamed = load_model(folder, device="cuda", dtype="float32", stream="always")
    assert streamed.streamed and streamed.device.type == "cuda"
    placed = set(streamed.model.hf_device_map.values())
    assert "cpu" in placed and (0 in placed or "cuda:0" in placed), placed
    a, b = layer_sweep(whole, TEXT, Reduction(90.0)), layer_sweep(streamed, TEXT, Reduction(90.0))
    assert [r.components for r in b.layers] == [r.components for r in a.layers]
    for x, y in zip(a.layers, b.layers, strict=True):
        assert y.loss == pytest.approx(x.loss, rel=1e-5)
        assert y.kl_divergence == pytest.approx(x.kl_divergence, rel=1e-4, abs=1e-7)
    r, s = reduce_layer(whole, TEXT, 1), reduce_layer(streamed, TEXT, 1)
    assert s.components == r.components and s.loss == pytest.approx(r.loss, rel=1e-5)
