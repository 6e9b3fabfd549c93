"""The massive-activation intervention (Sun et al. 2024): which entries it picks, what it sets them
to, and the loss and KL it measures, against a plain-torch run of the same change in the test."""

import json
import math

import numpy as np
import pytest
import torch

from hsviewer.core import intervene, iter_intervene
from hsviewer.core.analyses.checks import DamagedRun
from hsviewer.core.analyses.intervene.entries import massive_mask, random_mask, set_entries
from hsviewer.core.analyses.intervene.kind import INTERVENE, check_intervene
from hsviewer.core.analyses.intervene.layers import choose_layers, parse_layers
from hsviewer.core.analyses.intervene.results import InterventionCollector, InterventionResult, LayerIntervened
from hsviewer.core.analyses.intervene.spec import InterveneSpec
from hsviewer.core.errors import HsviewerError
from tests.core_helpers import block_path, cross_entropy_by_hand, kl_by_hand
from tests.tiny_models import ARCHITECTURES

RATIO = 3.0  # a tiny random model has no activation 100x its median; 3x picks a few per layer


def planted(rows=6, cols=40, seed=1):
    """Small values around 1 with three planted spikes, in two columns: (0, 5), (3, 5) and (0, 7)."""
    h = np.random.default_rng(seed).uniform(0.5, 1.5, (rows, cols)) * np.random.default_rng(seed + 1).choice(
        [-1, 1], (rows, cols)
    )
    h[0, 5], h[3, 5], h[0, 7] = 900.0, -700.0, 1200.0
    return h


def test_planted_spikes_are_the_entries_selected():
    h = planted()
    mask, median = massive_mask(h, 100.0)
    assert median == pytest.approx(np.median(np.abs(h)))
    assert sorted(map(tuple, np.argwhere(mask))) == [(0, 5), (0, 7), (3, 5)]
    assert not massive_mask(h, 2000.0)[0].any()  # nothing is 2000x a median near 1


def test_mean_is_of_the_other_tokens_and_zero_is_zero():
    h = planted()
    mask, _ = massive_mask(h, 100.0)
    mean = set_entries(h, mask, "mean").hidden
    others_5 = [h[t, 5] for t in range(h.shape[0]) if t not in (0, 3)]
    others_7 = [h[t, 7] for t in range(1, h.shape[0])]
    assert mean[0, 5] == pytest.approx(sum(others_5) / len(others_5))
    assert mean[3, 5] == pytest.approx(sum(others_5) / len(others_5))
    assert mean[0, 7] == pytest.approx(sum(others_7) / len(others_7))
    zero = set_entries(h, mask, "zero").hidden
    assert zero[0, 5] == zero[3, 5] == zero[0, 7] == 0.0
    for changed in (mean, zero):
        untouched = ~mask
        assert np.array_equal(changed[untouched], h[untouched])


def test_a_column_massive_at_every_token_has_no_mean_and_becomes_zero():
    h = planted(rows=4)
    h[:, 11] = 5000.0
    changed = set_entries(h, massive_mask(h, 100.0)[0], "mean")
    assert changed.lonely == [11] and np.all(changed.hidden[:, 11] == 0)


def test_the_random_control_draws_as_many_other_entries_the_same_each_time():
    mask, _ = massive_mask(planted(), 100.0)
    drawn = random_mask(mask, seed=0, layer=4)
    assert drawn.sum() == mask.sum() and not (drawn & mask).any()
    assert np.array_equal(drawn, random_mask(mask, seed=0, layer=4))
    assert not np.array_equal(drawn, random_mask(mask, seed=1, layer=4))


def reference_intervention(handle, ids, layer, ratio, value):
    """The intervention by hand: my own hooks on the Llama's model.model.layers, numpy for the change.

    Returns (entries changed, loss, KL, hidden diff norm)."""
    blocks = block_path(handle.model, "llama")
    seen = {}

    def capture(module, args, output):
        seen["h"] = (output if isinstance(output, torch.Tensor) else output[0])[0].double().numpy()

    hook = blocks[layer].register_forward_hook(capture)
    with torch.no_grad():
        clean_logits = handle.model(ids).logits[0].double().numpy()
    hook.remove()
    h = seen["h"]
    magnitude = np.abs(h)
    mask = magnitude > ratio * np.median(magnitude)
    new = h.copy()
    for t, j in np.argwhere(mask):
        others = [h[s, j] for s in range(h.shape[0]) if not mask[s, j]]
        new[t, j] = 0.0 if value == "zero" else sum(others) / len(others)

    def put(module, args, output):
        hidden = torch.as_tensor(new, dtype=torch.float32)[None]
        return hidden if isinstance(output, torch.Tensor) else (hidden, *output[1:])

    hook = blocks[layer].register_forward_hook(put)
    with torch.no_grad():
        logits = handle.model(ids).logits[0].double().numpy()
    hook.remove()
    token_ids = ids[0].numpy()
    loss = cross_entropy_by_hand(logits, token_ids)
    return int(mask.sum()), loss, kl_by_hand(clean_logits, logits), float(np.linalg.norm(new - h)), mask


@pytest.mark.parametrize("value", ["mean", "zero"])
def test_loss_and_kl_match_a_hooked_forward_pass_by_hand(tiny_handle, text, value):
    handle = tiny_handle("llama")
    ids = handle.tokenizer(text, return_tensors="pt")["input_ids"]
    result = intervene(handle, text, [1, 2], ratio=RATIO, value=value)
    assert [r.layer for r in result.layers] == [1, 2]
    clean = cross_entropy_by_hand(handle.model(ids).logits[0].detach().double().numpy(), ids[0].numpy())
    assert result.clean_loss == pytest.approx(clean, rel=1e-5)
    for r in result.layers:
        entries, loss, kl, diff, mask = reference_intervention(handle, ids, r.layer, RATIO, value)
        assert entries > 0 and r.entries == entries
        assert r.positions == [[int(t), int(j)] for t, j in np.argwhere(mask)][:50]
        assert r.loss == pytest.approx(loss, rel=1e-5)
        assert r.loss_change == pytest.approx(loss - clean, abs=1e-5)
        assert r.kl_divergence == pytest.approx(kl, rel=1e-3, abs=1e-7)
        assert r.hidden_diff_norm == pytest.approx(diff, rel=1e-5)
        assert r.kl_divergence > 0


def test_a_layer_with_nothing_massive_keeps_the_clean_loss(tiny_handle, text):
    result = intervene(tiny_handle("llama"), text, 0, ratio=1e6)
    (r,) = result.layers
    assert r.entries == 0 and r.positions == []
    assert r.loss == result.clean_loss and r.kl_divergence == 0 and r.hidden_diff_norm == 0
    assert "No entry exceeds 1e+06x the median at any chosen layer" in INTERVENE.summary(result.to_dict())


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_runs_at_all_layers(tiny_handle, text, arch):
    handle = tiny_handle(arch)
    result = intervene(handle, text, "all", ratio=RATIO, value="mean", control="random")
    assert [r.layer for r in result.layers] == list(range(handle.n_layers))
    assert any(r.entries > 0 for r in result.layers)
    for r in result.layers:
        assert math.isfinite(r.loss) and r.kl_divergence >= 0 and r.random_loss is not None
        assert (r.random_kl > 0) == (r.entries > 0)


def test_cancelling_keeps_the_layers_done(tiny_handle, text):
    events = iter_intervene(tiny_handle("llama"), text, InterveneSpec(layers="all", ratio=RATIO))
    collector = InterventionCollector()
    for event in events:
        collector.add(event)
        if isinstance(event, LayerIntervened):
            events.close()
            break
    result = collector.cancelled()
    assert result.cancelled and [r.layer for r in result.layers] == [0]
    assert "(cancelled" in INTERVENE.summary(result.to_dict())


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"ratio": 0.5}, "ratio"),
        ({"ratio": float("nan")}, "ratio"),
        ({"ratio": True}, "ratio"),
        ({"value": "median"}, "value"),
        ({"control": "shuffled"}, "control"),
        ({"layers": 3}, "from 0 to 2"),
        ({"layers": [0, -1]}, "from 0 to 2"),
        ({"layers": "2-1"}, "backwards"),
        ({"layers": "first"}, "Layers are"),
        ({"layers": []}, "No layer"),
    ],
)
def test_bad_options_are_plain_errors(tiny_handle, text, kwargs, words):
    kwargs = {"layers": 0, **kwargs}
    with pytest.raises(HsviewerError, match=words):
        intervene(tiny_handle("llama"), text, kwargs.pop("layers"), **kwargs)


def test_layers_are_spelled_as_one_a_range_a_list_or_all():
    assert parse_layers("all") is None and parse_layers(" ALL ") is None
    assert parse_layers("4") == [4] and parse_layers("2-4") == [2, 3, 4] and parse_layers("7,1, 3") == [7, 1, 3]
    assert choose_layers("7,1,3,1", 8) == [1, 3, 7] and choose_layers("all", 3) == [0, 1, 2]
    assert choose_layers(2, 3) == [2] and choose_layers((0, 2), 3) == [0, 2] and choose_layers(np.int64(1), 3) == [1]
    for bad in (True, 1.5, [0, "1"]):
        with pytest.raises(HsviewerError, match="whole number"):
            choose_layers(bad, 3)


def test_result_round_trips_through_json_and_old_fields_may_be_absent(tiny_handle, text):
    result = intervene(tiny_handle("llama"), text, [0, 2], ratio=RATIO, control="random")
    result.layers[0].largest_ratio = None  # a median of 0
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    check_intervene(data)
    again = InterventionResult.from_dict(data)
    assert again == result
    for layer in data["layers"]:
        for key in ("notes", "random_loss", "random_kl"):
            del layer[key]
    for key in ("control", "seed", "warnings", "cancelled"):
        del data[key]
    check_intervene(data)
    bare = InterventionResult.from_dict(data)
    assert bare.control is None and bare.layers[1].random_loss is None and bare.layers[1].notes == []
    assert "rand" not in INTERVENE.summary(data)


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda d: d.update(value="half"), "value"),
        (lambda d: d.update(ratio="100"), "ratio"),
        (lambda d: d["layers"][0].update(layer=99), "layer"),
        (lambda d: d["layers"][0].update(positions=[[0]]), "positions"),
        (lambda d: d["layers"][0].update(positions=[[0, -3]]), "positions"),
        (lambda d: d["layers"][0].pop("loss"), "loss"),
        (lambda d: d.update(layers={}), "layers"),
    ],
)
def test_a_damaged_saved_intervention_is_refused(tiny_handle, text, damage, words):
    data = intervene(tiny_handle("llama"), text, 1, ratio=RATIO).to_dict()
    damage(data)
    with pytest.raises(DamagedRun, match=words):
        check_intervene(data)


def test_kind_labels_tables_and_curves(tiny_handle, text):
    result = intervene(tiny_handle("llama"), text, "all", ratio=RATIO, value="zero")
    data = result.to_dict()
    assert INTERVENE.setting(data) == "zero, ratio 3" and INTERVENE.title(data) == " 3 layers"
    table = INTERVENE.table(result)
    assert table[0][:3] == ["layer", "entries", "largest_ratio"] and len(table) == 4
    assert table[1][-1].split()[0] == "{}:{}".format(*result.layers[0].positions[0])
    curve = INTERVENE.curves(data, 32, "loss_change", "run")
    assert np.allclose(curve.values, [r.loss - result.clean_loss for r in result.layers])
    assert np.array_equal(curve.layers, [0, 1, 2])
    with pytest.raises(HsviewerError, match="intervention"):
        INTERVENE.curves(data, 32, "components", "run")
