"""The memory plan at work: loads and analyses refused with numbers, precision chosen, --plan."""

from __future__ import annotations

import re

import psutil
import pytest
import torch

from hsviewer.cli import main
from hsviewer.core import HsviewerError, Reduction, layer_sweep, load_model, reduce_layer
from hsviewer.core.model.load_plan import plan_load
from hsviewer.core.model.load_spec import LoadSpec
from hsviewer.core.model.memory import RUNTIME_BYTES


def test_the_plan_of_a_tiny_model_counts_its_weights(tiny_model_dir):
    plan = plan_load(LoadSpec(source=str(tiny_model_dir), device="cpu", dtype="float32"), tokens=32)
    loaded = load_model(str(tiny_model_dir), device="cpu", dtype="float32")
    assert plan.weights == 4 * sum(p.numel() for p in loaded.model.parameters())
    assert plan.conversion == 0 and plan.fits


def test_auto_loads_float32_where_it_fits(tiny_model):
    assert tiny_model.model.dtype == torch.float32


def test_a_budget_below_the_runtime_refuses_the_load_with_numbers(tiny_model_dir, capsys):
    code = main(
        ["reduce", "--model", str(tiny_model_dir), "--layer", "1", "--out", "x.json", "--memory-budget", "100MB"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("hsviewer: error: Not enough memory: Memory plan (bfloat16 on cpu)")
    peak = float(re.search(r"peak (\d+\.\d) MB of 100\.0 MB budget", err[-1]).group(1))  # MB below 1 GB
    assert peak > RUNTIME_BYTES / 1e6


def test_plan_prints_and_loads_nothing(tiny_model_dir, tmp_path, capsys, monkeypatch):
    import hsviewer.core.model.loading as models

    monkeypatch.setattr(models, "load_pretrained", lambda *a, **k: pytest.fail("--plan loaded the model"))
    out = tmp_path / "s.json"
    assert main(["sweep", "--model", str(tiny_model_dir), "--text", "a b c d", "--out", str(out), "--plan"]) == 0
    said = capsys.readouterr().out
    assert said.startswith("Memory plan (float32 on cpu): weights 119.0 kB")  # 29,760 parameters in float32
    assert not out.exists()


def test_bfloat16_loads_and_sweeps(tiny_model_dir, text):
    handle = load_model(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    assert handle.model.dtype == torch.bfloat16 and handle.dtype == "bfloat16"
    result = layer_sweep(handle, text, Reduction(90.0))
    exact = layer_sweep(load_model(str(tiny_model_dir), device="cpu", dtype="float32"), text, Reduction(90.0))
    assert [r.layer for r in result.layers] == [0, 1, 2]
    assert result.clean_loss == pytest.approx(exact.clean_loss, rel=0.05)


def test_an_analysis_that_does_not_fit_beside_the_model_is_refused(tiny_model_dir, text):
    handle = load_model(str(tiny_model_dir), device="cpu")
    handle.memory_budget = psutil.Process().memory_info().rss + 1000  # nothing left
    with pytest.raises(HsviewerError, match=r"Not enough memory for this text: its analysis \(\d+ tokens\) needs"):
        reduce_layer(handle, text, 1)
    with pytest.raises(HsviewerError, match="Try a shorter text"):
        layer_sweep(handle, text)
    handle.memory_budget = None
    assert len(layer_sweep(handle, text).layers) == 3
