"""Participation ratio, effective rank and the massive-activation report against numpy by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hsviewer.core import Reduction, layer_sweep, reduce_layer
from hsviewer.core.linalg.measures import effective_rank, massive_activation, participation_ratio
from tests.support import TEXT
from tests.test_core_sweep import clean_run, token_ids


def double_centred_spectrum(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(0, keepdims=True) - x.mean(1, keepdims=True) + x.mean()
    return np.linalg.svd(centred, compute_uv=False)


def test_a_rank_one_matrix_gives_one_for_both():
    rng = np.random.default_rng(1)
    x = np.outer(rng.standard_normal(12), rng.standard_normal(7))
    s = np.linalg.svd(x, compute_uv=False)  # one value, the rest rounding noise
    assert participation_ratio(s) == pytest.approx(1.0, abs=1e-9)
    assert effective_rank(s) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("n", [1, 2, 5, 40])
def test_a_flat_spectrum_of_n_values_gives_n_for_both(n):
    s = np.full(n, 3.7)
    assert participation_ratio(s) == pytest.approx(n)
    assert effective_rank(s) == pytest.approx(n)


def test_a_hand_example():
    s = np.array([3.0, 1.0, 0.0])
    assert participation_ratio(s) == pytest.approx((9 + 1) ** 2 / (81 + 1))
    assert effective_rank(s) == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))


def test_no_variance_gives_zero_not_nan():
    assert participation_ratio(np.zeros(4)) == 0.0 and effective_rank(np.zeros(4)) == 0.0


def test_massive_activation_finds_the_spike_and_its_ratio():
    x = np.array([[1.0, -2.0, 1.0], [3.0, 1.0, -60.0]])
    found = massive_activation(x, ["a", "b"])
    assert (found.token, found.dimension, found.value, found.token_text) == (1, 2, -60.0, "b")
    assert found.ratio == pytest.approx(60.0 / np.median([1, 2, 1, 3, 1, 60]))
    assert found.to_dict()["ratio"] == found.ratio
    assert massive_activation(np.array([[0.0, 0.0, 5.0]])).to_dict()["ratio"] is None  # median 0: no finite ratio


def test_reduce_reports_the_measures_of_its_centred_spectrum(tiny_handle):
    result = reduce_layer(tiny_handle("llama"), TEXT, 1, Reduction(threshold=90))
    s = double_centred_spectrum(result.original)
    data = result.to_dict()
    assert data["kind"] == "reduce"
    assert data["participation_ratio"] == pytest.approx(np.sum(s**2) ** 2 / np.sum(s**4), rel=1e-5)
    p = s / s.sum()
    assert data["effective_rank"] == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-5)
    spike = np.unravel_index(np.abs(result.original).argmax(), result.original.shape)
    assert (data["massive_activation"]["token"], data["massive_activation"]["dimension"]) == tuple(map(int, spike))


def test_each_sweep_layer_reports_the_measures_of_its_own_hidden_state(tiny_handle):
    handle = tiny_handle("gpt2")
    _, _, outputs = clean_run(handle, token_ids(handle))
    data = layer_sweep(handle, TEXT, Reduction(threshold=90), controls=["exclude_first"]).to_dict()
    assert data["kind"] == "sweep"
    for row in data["layers"]:
        hs = outputs[row["layer"]]
        s = double_centred_spectrum(hs)
        assert row["participation_ratio"] == pytest.approx(np.sum(s**2) ** 2 / np.sum(s**4), rel=1e-4)
        magnitude = np.abs(hs)
        assert row["massive_activation"]["ratio"] == pytest.approx(magnitude.max() / np.median(magnitude), rel=1e-4)
    for row in data["controls"]["exclude_first"]["layers"]:  # the basis, and so the spectrum, without token 0
        s = double_centred_spectrum(outputs[row["layer"]][1:])
        assert row["participation_ratio"] == pytest.approx(np.sum(s**2) ** 2 / np.sum(s**4), rel=1e-4)
