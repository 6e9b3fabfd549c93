"""reduce_layer (parts 2 and 3): checked against an independent numpy reduction and a hand-made hook."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hsviewer.core import HsviewerError, Reduction, reduce_layer
from tests.core_helpers import (
    cross_entropy_by_hand,
    kl_by_hand,
    margin_ok,
    reference_reduce,
    run_with_block_output,
)
from tests.tiny_models import ARCHITECTURES

LONG_TEXT = " ".join(["the museum of modern art in amsterdam is a building"] * 10)  # 100 tokens > 64


def token_ids(handle, text):
    return torch.tensor([handle.tokenizer(text.strip())["input_ids"]])


def clean_block_output(handle, ids, layer):
    """Block `layer`'s output (T, D): from hidden_states where it is a block output, else my own hook."""
    with torch.no_grad():
        if layer < handle.n_layers - 1:
            return handle.model(ids, output_hidden_states=True).hidden_states[layer + 1][0].double().numpy()
        seen = {}

        def hook(module, args, output):
            seen["hs"] = (output if isinstance(output, torch.Tensor) else output[0])[0].detach().clone()

        handle_ = handle.blocks[layer].register_forward_hook(hook)
        try:
            handle.model(ids)
        finally:
            handle_.remove()
        return seen["hs"].double().numpy()


@pytest.fixture
def clean(tiny_model, text):
    ids = token_ids(tiny_model, text)
    with torch.no_grad():
        out = tiny_model.model(ids, labels=ids)
    return ids, out.logits[0].double().numpy(), float(out.loss)


@pytest.mark.parametrize("layer", [0, 1, 2])
@pytest.mark.parametrize("threshold", [70, 95])
def test_reduce_layer_against_numpy(tiny_model, text, clean, layer, threshold):
    ids, clean_logits, clean_loss = clean
    hs = clean_block_output(tiny_model, ids, layer)
    expected, k, kept, s = reference_reduce(hs, threshold)
    assert margin_ok(s, threshold)  # otherwise float32 and float64 may honestly disagree on k
    result = reduce_layer(tiny_model, text, layer, Reduction(threshold=threshold))

    assert result.layer == layer and result.n_layers == 3
    assert result.tokens == [tiny_model.tokenizer.decode([i]) for i in ids[0].tolist()]
    np.testing.assert_allclose(result.original, hs, rtol=1e-6, atol=1e-6)
    assert result.components == k
    assert result.variance_kept == pytest.approx(kept, rel=1e-5)
    assert result.variance_kept >= threshold
    np.testing.assert_allclose(result.s[: len(s)], s[: len(result.s)], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.reconstruction, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.difference, hs - expected, atol=1e-4)
    assert result.correlation == pytest.approx(np.corrcoef(hs.ravel(), expected.ravel())[0, 1], rel=1e-6)
    assert result.rank_original == np.linalg.matrix_rank(hs.astype(np.float32))
    assert k <= result.rank_reconstruction <= k + 2  # rank k plus the row and column means

    # downstream: the same as my own hook putting my reconstruction in
    logits, loss = run_with_block_output(tiny_model, ids, layer, expected)
    assert result.clean_loss == pytest.approx(clean_loss, rel=1e-6)
    assert result.clean_loss == pytest.approx(cross_entropy_by_hand(clean_logits, ids[0].numpy()), rel=1e-5)
    assert result.loss == pytest.approx(loss, rel=1e-4)
    assert result.logit_diff_norm == pytest.approx(np.linalg.norm(logits - clean_logits), rel=1e-3, abs=1e-5)
    assert result.kl_divergence == pytest.approx(kl_by_hand(clean_logits, logits), rel=1e-3, abs=1e-6)
    assert result.kl_divergence > 0

    # diff norms: nothing before the layer changes; the layer changes by exactly the reconstruction error
    assert result.diff_norms.shape == (3,)
    assert all(result.diff_norms[:layer] == 0)
    assert result.diff_norms[layer] == pytest.approx(np.linalg.norm(hs - expected), rel=1e-4)
    assert all(result.diff_norms[layer:] > 0)


def test_threshold_100_changes_nothing(tiny_model, text, clean):
    ids, _, clean_loss = clean
    for layer in range(3):
        result = reduce_layer(tiny_model, text, layer, Reduction(threshold=100))
        # a double-centred T x D matrix (T < D) has rank T - 1
        assert result.components == ids.shape[1] - 1
        assert result.variance_kept == pytest.approx(100)
        assert result.loss == pytest.approx(clean_loss, rel=1e-5)
        assert result.clean_loss == pytest.approx(clean_loss, rel=1e-6)
        np.testing.assert_allclose(result.reconstruction, result.original, atol=1e-4)
        assert result.kl_divergence == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("centering", ["column", "none"])
def test_other_centerings(tiny_model, text, clean, centering):
    ids, _, _ = clean
    layer = 1
    hs = clean_block_output(tiny_model, ids, layer)
    expected, k, kept, s = reference_reduce(hs, 90, centering=centering)
    assert margin_ok(s, 90)
    result = reduce_layer(tiny_model, text, layer, Reduction(threshold=90, centering=centering))
    assert result.components == k
    assert result.variance_kept == pytest.approx(kept, rel=1e-5)
    np.testing.assert_allclose(result.reconstruction, expected, rtol=1e-4, atol=1e-4)
    _, loss = run_with_block_output(tiny_model, ids, layer, expected)
    assert result.loss == pytest.approx(loss, rel=1e-4)
    assert result.to_dict()["centering"] == centering


@pytest.mark.parametrize("k", [1, 4])
def test_fixed_components(tiny_model, text, clean, k):
    ids, clean_logits, _ = clean
    hs = clean_block_output(tiny_model, ids, 0)
    expected, _, kept, _ = reference_reduce(hs, components=k)
    result = reduce_layer(tiny_model, text, 0, Reduction(fixed_components=k))
    assert result.components == k
    assert result.variance_kept == pytest.approx(kept, rel=1e-5)
    np.testing.assert_allclose(result.reconstruction, expected, rtol=1e-4, atol=1e-4)
    logits, loss = run_with_block_output(tiny_model, ids, 0, expected)
    assert result.loss == pytest.approx(loss, rel=1e-4)
    assert result.kl_divergence == pytest.approx(kl_by_hand(clean_logits, logits), rel=1e-3)
    if k == 1:  # a large change, where KL(clean || reduced) and KL(reduced || clean) clearly differ
        assert result.kl_divergence != pytest.approx(kl_by_hand(logits, clean_logits), rel=1e-2)


def test_fixed_components_above_the_rank(tiny_model, text, clean):
    ids, _, _ = clean
    with pytest.raises(HsviewerError, match="Components"):
        reduce_layer(tiny_model, text, 0, Reduction(fixed_components=ids.shape[1]))  # the rank is T - 1


def test_exclude_first(tiny_model, text, clean):
    ids, _, _ = clean
    layer = 2
    hs = clean_block_output(tiny_model, ids, layer)
    expected_rest, k, _, _ = reference_reduce(hs[1:], 90)
    result = reduce_layer(tiny_model, text, layer, Reduction(threshold=90, exclude_first=True))
    assert result.components == k
    np.testing.assert_array_equal(result.reconstruction[0], result.original[0])
    np.testing.assert_allclose(result.reconstruction[1:], expected_rest, rtol=1e-4, atol=1e-4)
    _, loss = run_with_block_output(tiny_model, ids, layer, np.vstack([hs[:1], expected_rest]))
    assert result.loss == pytest.approx(loss, rel=1e-4)


def test_random_basis_is_the_one_hooked_in(tiny_model, text):
    layer = 1
    top = reduce_layer(tiny_model, text, layer, Reduction(threshold=90))
    rnd = reduce_layer(tiny_model, text, layer, Reduction(threshold=90, basis="random"))
    assert rnd.components == top.components
    assert rnd.variance_kept < top.variance_kept
    # the hooked-in hidden state is the reported reconstruction
    assert rnd.diff_norms[layer] == pytest.approx(np.linalg.norm(rnd.original - rnd.reconstruction), rel=1e-4)
    assert rnd.diff_norms[layer] > top.diff_norms[layer]


def test_to_dict(tiny_model, text):
    result = reduce_layer(tiny_model, text, 1, Reduction(threshold=90))
    d = result.to_dict()
    for key in ("layer", "components", "variance_kept", "singular_values", "cumulative_percent", "correlation"):
        assert key in d
    assert d["diff_norms"] == result.diff_norms.tolist()
    assert d["threshold"] == 90
    json.dumps(d)


def test_default_reduction_is_95_percent(tiny_model, text):
    assert reduce_layer(tiny_model, text, 0).components == reduce_layer(tiny_model, text, 0, Reduction(95)).components


@pytest.mark.parametrize("bad", ["", "   ", "\n\t", "museum", "  art  "], ids=["empty", "spaces", "ws", "1", "1-ws"])
def test_too_short_text(tiny_model, bad):
    with pytest.raises(HsviewerError, match=r"empty|two tokens"):
        reduce_layer(tiny_model, bad, 0)


def test_long_text_is_truncated_with_a_warning(tiny_model):
    result = reduce_layer(tiny_model, LONG_TEXT, 2, Reduction(threshold=90))
    assert len(result.tokens) == 64
    assert result.original.shape == (64, 32)
    assert len(result.warnings) == 1 and "64" in result.warnings[0]
    ids = token_ids(tiny_model, LONG_TEXT)[:, :64]
    hs = clean_block_output(tiny_model, ids, 2)
    np.testing.assert_allclose(result.original, hs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer", [-1, 3, 10, 1.5, True, None, "1", "x", float("nan")])
def test_layer_out_of_range(tiny_model, text, layer):
    with pytest.raises(HsviewerError, match="Layer"):
        reduce_layer(tiny_model, text, layer)


def test_whole_float_layer_is_accepted(tiny_model, text):
    assert reduce_layer(tiny_model, text, 1.0).layer == 1


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_reduce_layer_on_every_architecture(tiny_handle, arch):
    handle = tiny_handle(arch)
    text = "the museum of modern art in amsterdam is a building by van gogh , located close to the square ."
    ids = token_ids(handle, text)
    with torch.no_grad():
        out = handle.model(ids, labels=ids)
    clean_logits, clean_loss = out.logits[0].double().numpy(), float(out.loss)
    for layer in (0, handle.n_layers - 1):
        hs = clean_block_output(handle, ids, layer)
        expected, k, _, s = reference_reduce(hs, 90)
        assert margin_ok(s, 90)
        result = reduce_layer(handle, text, layer, Reduction(threshold=90))
        assert result.n_layers == handle.n_layers
        assert result.components == k
        np.testing.assert_allclose(result.reconstruction, expected, rtol=1e-4, atol=1e-4)
        logits, loss = run_with_block_output(handle, ids, layer, expected)
        assert result.clean_loss == pytest.approx(clean_loss, rel=1e-6)
        assert result.loss == pytest.approx(loss, rel=1e-4)
        assert result.kl_divergence == pytest.approx(kl_by_hand(clean_logits, logits), rel=1e-3, abs=1e-6)
        assert all(result.diff_norms[:layer] == 0) and result.diff_norms[layer] > 0
