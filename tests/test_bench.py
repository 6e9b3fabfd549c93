"""`hsviewer bench`'s sweep timings on a chosen device, and its check of a sweep against a CPU run
(the CUDA side runs in tests/test_gpu.py)."""

from __future__ import annotations

import copy

from hsviewer.cli import build_parser
from hsviewer.commands.bench import _sweep_times, sweep_agreement
from hsviewer.core import Reduction, layer_sweep


def test_agreement_names_the_layers_whose_components_differ(tiny_handle, text):
    handle = tiny_handle("gpt_neox")
    cpu = layer_sweep(handle, text, Reduction(90.0))
    same = dict(sweep_agreement(layer_sweep(handle, text, Reduction(90.0), batch=2), cpu))
    assert same["components equal to the CPU run's"] == "yes"
    assert float(same["largest relative loss difference from the CPU run"]) < 1e-5
    other = copy.deepcopy(cpu)
    other.layers[1].components += 1
    other.layers[2].loss = cpu.layers[2].loss * 1.01
    differ = dict(sweep_agreement(other, cpu))
    assert differ["components equal to the CPU run's"] == "no, at layers [1]"
    assert differ["largest relative loss difference from the CPU run"] == "1.0e-02"


def test_cpu_sweep_timings_name_device_and_precision(tiny_folder, text):
    rows = dict(_sweep_times(str(tiny_folder("llama")), text, "cpu", "float32"))
    assert rows["sweep, prefix-sharing (cpu, float32)"].endswith(" s")
    assert "sweep, notebook-style (hook, full pass per layer; cpu, float32)" in rows
    assert not any("batched" in name or "CPU run" in name for name in rows)  # those are a GPU's


def test_cpu_sweep_timings_include_one_and_two_threads(tiny_folder, text, monkeypatch):
    import torch

    import hsviewer.core

    seen = []
    sweep = hsviewer.core.layer_sweep

    def counted(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return sweep(*args, **kwargs)

    monkeypatch.setattr(hsviewer.core, "layer_sweep", counted)
    rows = dict(_sweep_times(str(tiny_folder("llama")), text, "cpu", "float32"))
    assert rows["sweep, prefix-sharing, --threads 1"].endswith(" s")
    assert rows["sweep, prefix-sharing, --threads 2"].endswith(" s")
    assert seen[-4:] == [1, 1, 2, 2]  # each timed twice, best of two


def test_bench_takes_device_and_precision():
    args = build_parser().parse_args(["bench", "--device", "cuda", "--dtype", "bfloat16"])
    assert (args.device, args.dtype) == ("cuda", "bfloat16")
    assert build_parser().parse_args(["bench"]).device == "cpu"
