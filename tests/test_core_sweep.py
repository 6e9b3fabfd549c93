"""layer_sweep (part 4) against a plain loop written here: my own hook, my own numpy reduction, my own KL."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hsviewer.core import HsviewerError, Reduction, iter_sweep, layer_sweep
from hsviewer.core.analyses.sweep.run import LayerDone, RunStarted, SweepCollector
from hsviewer.core.analyses.sweep.spec import SweepSpec
from tests.core_helpers import kl_by_hand, margin_ok, reference_reduce, run_with_block_output
from tests.support import TEXT
from tests.tiny_models import ARCHITECTURES

THRESHOLD = 90.0
SWEEP_KEYS = {"model", "tokens", "n_layers", "threshold", "clean_loss", "layers"}
LAYER_KEYS = {"layer", "components", "variance_kept", "hidden_diff_norm", "logit_diff_norm", "loss", "token_diff_norms"}


def token_ids(handle, text=TEXT):
    return torch.tensor([handle.tokenizer(text)["input_ids"]])


def clean_run(handle, ids):
    """Logits, loss and every block's output (T, D) from one plain forward with my own hooks."""
    outputs = {}

    def make(i):
        def hook(module, args, output):
            outputs[i] = (output if isinstance(output, torch.Tensor) else output[0])[0].detach().double().numpy()

        return hook

    handles = [b.register_forward_hook(make(i)) for i, b in enumerate(handle.blocks)]
    try:
        with torch.no_grad():
            out = handle.model(ids, labels=ids)
    finally:
        for h in handles:
            h.remove()
    return out.logits[0].double().numpy(), float(out.loss), outputs


def reference_sweep(handle, ids, threshold=THRESHOLD, exclude_first=False, components=None):
    """For each layer: reduce that block's clean output in numpy, hook it in, run the model, read the loss."""
    clean_logits, clean_loss, outputs = clean_run(handle, ids)
    layers = []
    for layer in range(handle.n_layers):
        hs = outputs[layer]
        part = hs[1:] if exclude_first else hs
        recon, k, kept, s = reference_reduce(part, threshold, components=components)
        if components is None:
            assert margin_ok(s, threshold), f"layer {layer}: a cumulative percent is too close to the threshold"
        if exclude_first:
            recon = np.vstack([hs[:1], recon])
        logits, loss = run_with_block_output(handle, ids, layer, recon)
        layers.append(
            {
                "layer": layer,
                "components": k,
                "variance_kept": kept,
                "hidden_diff_norm": float(np.linalg.norm(recon - hs)),
                "token_diff_norms": np.linalg.norm(recon - hs, axis=-1),
                "logit_diff_norm": float(np.linalg.norm(logits - clean_logits)),
                "loss": loss,
                "kl_divergence": kl_by_hand(clean_logits, logits),
            }
        )
    return clean_loss, layers


def assert_matches_reference(result, clean_loss, reference, rel=1e-4):
    assert result.clean_loss == pytest.approx(clean_loss, rel=1e-6)
    assert [r.layer for r in result.layers] == [r["layer"] for r in reference]
    assert [r.components for r in result.layers] == [r["components"] for r in reference]
    for got, want in zip(result.layers, reference, strict=True):
        assert got.variance_kept == pytest.approx(want["variance_kept"], rel=1e-5)
        assert got.loss == pytest.approx(want["loss"], rel=rel)
        assert got.hidden_diff_norm == pytest.approx(want["hidden_diff_norm"], rel=1e-3, abs=1e-5)
        np.testing.assert_allclose(got.token_diff_norms, want["token_diff_norms"], rtol=1e-3, atol=1e-4)
        assert got.logit_diff_norm == pytest.approx(want["logit_diff_norm"], rel=1e-3, abs=1e-5)
        assert got.kl_divergence == pytest.approx(want["kl_divergence"], rel=1e-3, abs=1e-6)


@pytest.fixture(scope="module")
def reference_for(tiny_handle):
    """arch -> (clean loss, reference sweep) of that tiny model, computed once per module."""
    cache = {}

    def reference(arch):
        if arch not in cache:
            handle = tiny_handle(arch)
            cache[arch] = reference_sweep(handle, token_ids(handle))
        return cache[arch]

    return reference


# --- the sweep equals an independent loop, on every architecture --------------------------------


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_reference_is_not_trivial(tiny_handle, reference_for, arch):
    clean_loss, reference = reference_for(arch)
    assert all(r["loss"] != clean_loss for r in reference)
    assert all(r["components"] < len(token_ids(tiny_handle(arch))[0]) - 1 for r in reference)


# batched tails (the CUDA default) on a tuple-output and a tensor-output architecture; the batched
# path is compared with the single one on all six in test_sweep_batched.py
CASES = [(arch, how) for arch in ARCHITECTURES for how in ("prefix", "hooks")] + [
    ("gpt_neo", "batched"),
    ("llama", "batched"),
]


@pytest.mark.parametrize(("arch", "how"), CASES)
def test_sweep_equals_an_independent_loop(tiny_handle, reference_for, arch, how):
    handle = tiny_handle(arch)
    kwargs = {"batch": 2} if how == "batched" else {"method": how}
    result = layer_sweep(handle, TEXT, Reduction(threshold=THRESHOLD), **kwargs)
    clean_loss, reference = reference_for(arch)
    assert result.n_layers == handle.n_layers
    assert result.tokens == [handle.tokenizer.decode([i]) for i in token_ids(handle)[0].tolist()]
    assert not result.cancelled
    assert_matches_reference(result, clean_loss, reference)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_prefix_equals_hooks(tiny_handle, arch):
    handle = tiny_handle(arch)
    prefix = layer_sweep(handle, TEXT, Reduction(threshold=THRESHOLD))
    hooks = layer_sweep(handle, TEXT, Reduction(threshold=THRESHOLD), method="hooks")
    assert prefix.method == "prefix" and hooks.method == "hooks"
    assert prefix.clean_loss == hooks.clean_loss
    assert [r.components for r in prefix.layers] == [r.components for r in hooks.layers]
    for a, b in zip(prefix.layers, hooks.layers, strict=True):
        assert a.loss == pytest.approx(b.loss, rel=1e-5)
        assert a.variance_kept == pytest.approx(b.variance_kept, rel=1e-6)
        assert a.hidden_diff_norm == pytest.approx(b.hidden_diff_norm, rel=1e-5, abs=1e-6)
        assert a.logit_diff_norm == pytest.approx(b.logit_diff_norm, rel=1e-4, abs=1e-6)
        assert a.kl_divergence == pytest.approx(b.kl_divergence, rel=1e-4, abs=1e-7)
        np.testing.assert_allclose(a.token_diff_norms, b.token_diff_norms, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ["gpt_neo", "llama"])
def test_fixed_components_sweep(tiny_handle, arch):
    handle = tiny_handle(arch)
    clean_loss, reference = reference_sweep(handle, token_ids(handle), components=3)
    result = layer_sweep(handle, TEXT, Reduction(fixed_components=3))
    assert_matches_reference(result, clean_loss, reference)
    assert result.to_dict()["fixed_components"] == 3


def test_threshold_100_keeps_the_clean_loss(tiny_model, text):
    result = layer_sweep(tiny_model, text, Reduction(threshold=100))
    for r in result.layers:
        assert r.loss == pytest.approx(result.clean_loss, rel=1e-5)
        assert r.kl_divergence == pytest.approx(0, abs=1e-6)
        assert r.hidden_diff_norm < 1e-3


def test_sweep_leaves_the_model_as_it_was(tiny_model, text):
    ids = token_ids(tiny_model, text)
    before = clean_run(tiny_model, ids)[0]
    hooks_before = [list(b._forward_hooks) for b in tiny_model.blocks]
    layer_sweep(tiny_model, text, Reduction(threshold=50))
    layer_sweep(tiny_model, text, method="hooks")
    assert [list(b._forward_hooks) for b in tiny_model.blocks] == hooks_before
    assert all("forward" not in b.__dict__ for b in tiny_model.blocks)
    np.testing.assert_array_equal(clean_run(tiny_model, ids)[0], before)


# --- grid ---------------------------------------------------------------------------------------


def test_grid_equals_separate_sweeps(tiny_model, text):
    thresholds = (80, 90, 99)
    grid = [Reduction(threshold=t) for t in thresholds]
    result = layer_sweep(tiny_model, text, grid=grid)
    separate = [layer_sweep(tiny_model, text, Reduction(threshold=t)) for t in thresholds]
    for layer, r in enumerate(result.layers):
        assert r.grid_components == [s.layers[layer].components for s in separate]
        assert r.grid_loss == pytest.approx([s.layers[layer].loss for s in separate], rel=1e-6)
    # the grid's k really differ from the main reduction's (95%) somewhere, so reuse is not all there is
    assert any(k != r.components for r in result.layers for k in r.grid_components)
    # each threshold keeps its own k in every layer: more variance, strictly more components
    for r in result.layers:
        assert r.grid_components == sorted(set(r.grid_components)), r.grid_components
    d = result.to_dict()["grid"]
    assert d["settings"] == ["80%", "90%", "99%"]
    assert d["loss"] == [r.grid_loss for r in result.layers]
    assert d["loss_change"][0][0] == pytest.approx(result.layers[0].grid_loss[0] - result.clean_loss)


def test_grid_against_the_independent_loop(tiny_model, text):
    ids = token_ids(tiny_model, text)
    result = layer_sweep(tiny_model, text, grid=[Reduction(threshold=t) for t in (80, 99)])
    for i, t in enumerate((80, 99)):
        _, reference = reference_sweep(tiny_model, ids, threshold=t)
        assert [r.grid_components[i] for r in result.layers] == [r["components"] for r in reference]
        assert [r.grid_loss[i] for r in result.layers] == pytest.approx([r["loss"] for r in reference], rel=1e-4)


def test_grid_with_fixed_components(tiny_model, text):
    result = layer_sweep(
        tiny_model, text, Reduction(fixed_components=2), grid=[Reduction(fixed_components=k) for k in (1, 2, 5)]
    )
    separate = [layer_sweep(tiny_model, text, Reduction(fixed_components=k)) for k in (1, 2, 5)]
    for layer, r in enumerate(result.layers):
        assert r.grid_components == [1, 2, 5]
        assert r.grid_loss == pytest.approx([s.layers[layer].loss for s in separate], rel=1e-6)


@pytest.mark.parametrize(
    "setting",
    [Reduction(threshold=90, centering="none"), Reduction(threshold=90, exclude_first=True)],
    ids=["centering", "exclude_first"],
)
def test_grid_setting_with_its_own_centering(tiny_model, text, setting):
    result = layer_sweep(tiny_model, text, Reduction(threshold=90), grid=[setting])
    separate = layer_sweep(tiny_model, text, setting)
    for layer, r in enumerate(result.layers):
        assert r.grid_components == [separate.layers[layer].components]
        assert r.grid_loss == pytest.approx([separate.layers[layer].loss], rel=1e-6)


def test_grid_with_hooks_method(tiny_model, text):
    grid = [Reduction(threshold=t) for t in (80, 99)]
    hooks = layer_sweep(tiny_model, text, method="hooks", grid=grid)
    prefix = layer_sweep(tiny_model, text, grid=grid)
    for a, b in zip(hooks.layers, prefix.layers, strict=True):
        assert a.grid_components == b.grid_components
        assert a.grid_loss == pytest.approx(b.grid_loss, rel=1e-5)


# --- controls -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_controls(tiny_handle):
    handle = tiny_handle("llama")
    return layer_sweep(handle, TEXT, Reduction(threshold=THRESHOLD), controls=("exclude_first", "random", "shuffled"))


def test_controls_are_all_there(with_controls):
    assert set(with_controls.controls) == {"exclude_first", "random", "shuffled"}
    for control in with_controls.controls.values():
        assert len(control.layers) == with_controls.n_layers
    d = with_controls.to_dict()
    assert set(d["controls"]) == {"exclude_first", "random", "shuffled"}
    json.dumps(d)


def test_exclude_first_control(tiny_handle, with_controls):
    handle = tiny_handle("llama")
    control = with_controls.controls["exclude_first"]
    for r in control.layers:
        assert r.token_diff_norms[0] == 0
    assert all(r.token_diff_norms[0] > 0 for r in with_controls.layers)
    assert any(a.loss != b.loss for a, b in zip(control.layers, with_controls.layers, strict=True))
    clean_loss, reference = reference_sweep(handle, token_ids(handle), exclude_first=True)
    assert_matches_reference(control, clean_loss, reference)


def test_random_control(with_controls):
    control = with_controls.controls["random"]
    assert [r.components for r in control.layers] == [r.components for r in with_controls.layers]
    for rnd, top in zip(control.layers, with_controls.layers, strict=True):
        # Eckart-Young: no k-dimensional subspace keeps more variance than the top k
        assert rnd.variance_kept < top.variance_kept
        assert rnd.hidden_diff_norm > top.hidden_diff_norm
        assert rnd.loss != top.loss


def test_shuffled_control(tiny_handle, with_controls):
    handle = tiny_handle("llama")
    control = with_controls.controls["shuffled"]
    ids = token_ids(handle)
    order = torch.randperm(ids.shape[1], generator=torch.Generator().manual_seed(0))
    assert order.tolist() != list(range(ids.shape[1]))
    shuffled = ids[:, order]
    assert control.clean_loss != pytest.approx(with_controls.clean_loss)
    clean_loss, reference = reference_sweep(handle, shuffled)
    assert_matches_reference(control, clean_loss, reference)


# --- progress, cancel, output -------------------------------------------------------------------


def layer_events(events):
    return [(e.done, e.total, e.label, e.result.layer) for e in events if isinstance(e, LayerDone)]


def test_events(tiny_model, text):
    events = list(iter_sweep(tiny_model, text))
    # the clean pass, then its logits (one chunk of this short text)
    kinds = ["Progress", "Progress", "RunStarted", *["LayerDone"] * 3, "Finished"]
    assert [type(e).__name__ for e in events] == kinds
    assert layer_events(events) == [(1, 3, "", 0), (2, 3, "", 1), (3, 3, "", 2)]
    started, finished = events[2], events[-1]
    assert started.run.layers == [] and started.runs == [""]
    assert started.hidden_size == tiny_model.model.config.hidden_size
    assert started.run.clean_loss == finished.result.clean_loss
    assert finished.result.layers == [e.result for e in events if isinstance(e, LayerDone)]


def test_iter_sweep_layers_equal_layer_sweep(tiny_model, text):
    events = list(iter_sweep(tiny_model, text, SweepSpec(reduction=Reduction(90.0))))
    plain = layer_sweep(tiny_model, text, Reduction(90.0))
    layers = [e.result for e in events if isinstance(e, LayerDone)]
    assert len(layers) == tiny_model.n_layers
    assert [r.to_dict() for r in layers] == [r.to_dict() for r in plain.layers]


def test_events_with_controls(tiny_model, text):
    events = list(iter_sweep(tiny_model, text, SweepSpec(controls=("random", "shuffled"))))
    calls = layer_events(events)
    assert [c[0] for c in calls] == list(range(1, 10))
    assert {c[1] for c in calls} == {9}
    assert [c[2] for c in calls] == [""] * 3 + ["random"] * 3 + ["shuffled"] * 3
    assert [c[3] for c in calls] == [0, 1, 2] * 3
    assert [e.label for e in events if isinstance(e, RunStarted)] == ["", "random", "shuffled"]
    result = events[-1].result
    assert len(result.layers) == 3
    assert [len(c.layers) for c in result.controls.values()] == [3, 3]


def stop_after_layers(events, n):
    """Iterate as the GUI's worker does and stop after n layer events; the collector's partial result."""
    collector = SweepCollector()
    seen = 0
    for event in events:
        collector.add(event)
        seen += isinstance(event, LayerDone)
        if seen == n:
            events.close()
            break
    return collector.cancelled()


def test_stopping_keeps_the_layers_done(tiny_model, text):
    result = stop_after_layers(iter_sweep(tiny_model, text), 2)
    assert result.cancelled
    assert [r.layer for r in result.layers] == [0, 1]
    assert result.to_dict()["cancelled"] is True
    full = layer_sweep(tiny_model, text)
    assert [r.loss for r in result.layers] == [r.loss for r in full.layers[:2]]
    assert not full.cancelled


def test_cancel_is_asked_after_every_event(tiny_model, text):
    answers = iter([False, False, False, False, True])  # clean pass, its logits, RunStarted, layer 0, layer 1
    result = layer_sweep(tiny_model, text, cancel=lambda: next(answers))
    assert result.cancelled
    assert [r.layer for r in result.layers] == [0, 1]


def test_cancel_before_anything(tiny_model, text):
    with pytest.raises(HsviewerError, match="before its first layer"):
        layer_sweep(tiny_model, text, controls=("random",), cancel=lambda: True)
    # after the clean pass, its logits and RunStarted
    result = layer_sweep(tiny_model, text, controls=("random",), cancel=iter([False, False, True]).__next__)
    assert result.cancelled
    assert result.layers == []
    assert result.controls == {}


def test_cancel_during_controls(tiny_model, text):
    result = stop_after_layers(iter_sweep(tiny_model, text, SweepSpec(controls=("random", "shuffled"))), 5)
    assert result.cancelled
    assert len(result.layers) == 3
    assert {name: len(c.layers) for name, c in result.controls.items()} == {"random": 2}


def test_to_dict(tiny_model, text):
    result = layer_sweep(tiny_model, text, Reduction(threshold=THRESHOLD))
    d = result.to_dict()
    assert set(d) >= SWEEP_KEYS
    assert d["n_layers"] == 3 and len(d["layers"]) == 3
    assert d["threshold"] == THRESHOLD
    assert d["tokens"] == result.tokens and len(d["tokens"]) == len(token_ids(tiny_model, text)[0])
    for i, layer in enumerate(d["layers"]):
        assert set(layer) >= LAYER_KEYS
        assert layer["layer"] == i
        assert len(layer["token_diff_norms"]) == len(d["tokens"])
    assert "grid" not in d and "controls" not in d
    json.dumps(d)


def test_long_text_warning(tiny_model):
    result = layer_sweep(tiny_model, " ".join(["art"] * 80))
    assert len(result.tokens) == 64
    assert result.warnings and "64" in result.warnings[0]
    assert result.to_dict()["warnings"] == result.warnings


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "fast"}, "Method"),
        ({"controls": ("nonsense",)}, "control"),
        ({"controls": ("random", "bogus")}, "bogus"),
    ],
)
def test_bad_arguments(tiny_model, text, kwargs, match):
    with pytest.raises(HsviewerError, match=match):
        layer_sweep(tiny_model, text, **kwargs)


@pytest.mark.parametrize("bad", ["", "   ", "museum"])
def test_too_short_text(tiny_model, bad):
    with pytest.raises(HsviewerError, match=r"empty|two tokens"):
        layer_sweep(tiny_model, bad)
