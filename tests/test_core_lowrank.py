"""lowrank and reduction: component choice, centering and reconstruction, checked against plain numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hsviewer.core import HsviewerError
from hsviewer.core.linalg import lowrank
from hsviewer.core.linalg.reduction import Reduction, reduce_matrix
from tests.core_helpers import notebook_reconstruction
from tests.core_helpers import smallest_k as loop_smallest_k


def notebook_rule(s: np.ndarray, threshold: float) -> int:
    """The notebook's r: the first index whose cumulative percent exceeds the threshold."""
    pct = 100 * s**2 / np.sum(s**2)
    cum_pct = np.cumsum(pct)
    return int(np.where(cum_pct > threshold)[0][0])


def smallest_k(s: np.ndarray, threshold: float) -> int:
    """The smallest k whose cumulative percent reaches the threshold, by a plain loop, with a 1e-12 slack."""
    return loop_smallest_k(s, threshold, tolerance=1e-12)


# s**2 = 50, 30, 15, 5: cumulative percent exactly 50, 80, 95, 100.
S_EXACT = np.sqrt(np.array([50.0, 30.0, 15.0, 5.0]))


def test_smallest_k_where_the_notebook_keeps_one_fewer():
    # Cumulative 50, 80, 95, 100: 90% needs k = 3 (95% >= 90%); the notebook's r is index 2, i.e. 2 components.
    assert lowrank.components_for_threshold(S_EXACT, 90) == 3
    assert notebook_rule(S_EXACT, 90) == 2


@pytest.mark.parametrize(("threshold", "k"), [(50, 1), (80, 2), (95, 3), (100, 4), (49.999, 1), (50.001, 2), (1e-6, 1)])
def test_threshold_exactly_on_a_cumulative_value(threshold, k):
    assert lowrank.components_for_threshold(S_EXACT, threshold) == k
    assert smallest_k(S_EXACT, threshold) == k


def test_cumulative_percent_by_hand():
    np.testing.assert_allclose(lowrank.cumulative_percent(S_EXACT), [50, 80, 95, 100], rtol=1e-12)
    np.testing.assert_allclose(lowrank.cumulative_percent(torch.tensor(S_EXACT)), [50, 80, 95, 100], rtol=1e-12)


def test_threshold_100_on_rank_deficient_matrix_keeps_the_rank():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 3)) @ rng.standard_normal((3, 9))  # rank 3
    s = np.linalg.svd(x, compute_uv=False)
    assert np.linalg.matrix_rank(x) == 3
    assert lowrank.components_for_threshold(s, 100) == 3
    assert lowrank.numerical_rank(s, x.shape) == 3


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [10, 50, 73.3, 90, 95, 99, 99.9, 100])
def test_components_match_a_plain_loop_on_random_spectra(seed, threshold):
    # every component holds well over the 1e-7 percent rounding tolerance
    s = np.sort(np.random.default_rng(seed).random(20) ** 3 + 0.01)[::-1]
    assert lowrank.components_for_threshold(s, threshold) == smallest_k(s, threshold)


BAD_THRESHOLDS = [0, 0.0, -1, -0.001, 100.0001, 101, 1e9, math.nan, math.inf, -math.inf, None, "abc", ""]


@pytest.mark.parametrize("bad", BAD_THRESHOLDS)
def test_bad_thresholds(bad):
    with pytest.raises(HsviewerError, match="Threshold"):
        lowrank.components_for_threshold(S_EXACT, bad)
    with pytest.raises(HsviewerError, match="Threshold"):
        Reduction(threshold=bad)


@pytest.mark.parametrize("bad", ["95", "50", True, b"90"])
def test_threshold_strings_and_bools_are_rejected(bad):
    with pytest.raises(HsviewerError, match="Threshold"):
        lowrank.check_threshold(bad)


def test_numpy_threshold_values_are_accepted():
    assert lowrank.check_threshold(np.float32(95)) == 95.0
    assert lowrank.check_threshold(np.int64(100)) == 100.0


def test_zero_matrix_has_no_variance():
    with pytest.raises(HsviewerError, match="no variance"):
        lowrank.components_for_threshold(np.zeros(4), 90)
    with pytest.raises(HsviewerError, match="no variance"):
        lowrank.choose_components(np.zeros(4), None, 1)


def test_fixed_components():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 5)) @ rng.standard_normal((5, 6))  # rank 5
    s = np.linalg.svd(x, compute_uv=False)
    for k in range(1, 6):
        assert lowrank.choose_components(s, 99.0, k) == k  # a fixed k wins over the threshold
    assert lowrank.choose_components(s, None, 5.0) == 5
    assert lowrank.choose_components(s, None, np.int64(2)) == 2


@pytest.mark.parametrize("bad", [0, -1, 6, 7, 100, 2.5, True, "3", "abc", math.nan, math.inf])
def test_bad_fixed_components(bad):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 5)) @ rng.standard_normal((5, 6))  # rank 5
    s = np.linalg.svd(x, compute_uv=False)
    with pytest.raises(HsviewerError, match="Components"):
        lowrank.choose_components(s, None, bad)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "3", "abc", math.nan, math.inf])
def test_bad_fixed_components_in_reduction(bad):
    with pytest.raises(HsviewerError, match="Components"):
        Reduction(fixed_components=bad)


def test_fixed_components_above_the_rank_of_a_float32_torch_matrix():
    # A double-centred 10 x 32 float32 matrix has rank 9; k = 10 keeps float32 rounding noise as a "component".
    x = torch.randn(10, 32, generator=torch.Generator().manual_seed(0))
    c = lowrank.center(x, "double").data
    s = lowrank.svd(c)[1]
    assert torch.linalg.matrix_rank(c).item() == 9
    assert np.linalg.matrix_rank(c.numpy()) == 9
    assert lowrank.numerical_rank(s, tuple(c.shape)) == 9
    assert lowrank.choose_components(s, None, 9) == 9
    with pytest.raises(HsviewerError, match="Components"):
        lowrank.choose_components(s, None, 10)
    with pytest.raises(HsviewerError, match="Components"):
        reduce_matrix(x, Reduction(fixed_components=10))


X = np.random.default_rng(3).standard_normal((7, 5)) * np.arange(1, 6) + np.arange(7)[:, None]


def test_double_centering_as_the_notebook():
    rows = X.mean(axis=1, keepdims=True)
    cols = X.mean(axis=0, keepdims=True)
    grand = X.mean()
    expected = X - cols - rows + grand
    c = lowrank.center(X, "double")
    np.testing.assert_allclose(c.data, expected, atol=1e-12)
    np.testing.assert_allclose(c.data.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(c.data.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(c.restore(c.data), X, atol=1e-12)


def test_column_centering():
    expected = X - X.mean(axis=0, keepdims=True)
    c = lowrank.center(X, "column")
    np.testing.assert_allclose(c.data, expected, atol=1e-12)
    np.testing.assert_allclose(c.restore(c.data), X, atol=1e-12)
    assert not np.allclose(c.data.mean(axis=1), 0)


def test_no_centering():
    c = lowrank.center(X, "none")
    np.testing.assert_array_equal(c.data, X)
    np.testing.assert_array_equal(c.restore(c.data), X)


@pytest.mark.parametrize("centering", ["double", "column", "none"])
def test_centering_torch_equals_numpy(centering):
    c_np = lowrank.center(X, centering)
    c_t = lowrank.center(torch.tensor(X), centering)
    assert isinstance(c_t.data, torch.Tensor)
    np.testing.assert_allclose(c_t.data.numpy(), c_np.data, atol=1e-12)


@pytest.mark.parametrize("bad", ["row", "", None, "Double"])
def test_bad_centering(bad):
    with pytest.raises(HsviewerError, match="Centering"):
        lowrank.center(X, bad)
    with pytest.raises(HsviewerError, match="Centering"):
        Reduction(centering=bad)


def test_bad_basis():
    with pytest.raises(HsviewerError, match="Basis"):
        Reduction(basis="bottom")


@pytest.mark.parametrize("shape", [(7, 5), (5, 7), (6, 6)])
def test_reconstruction_with_all_components_gives_the_input(shape):
    x = np.random.default_rng(4).standard_normal(shape)
    u, s, vh = lowrank.svd(x)
    assert u.shape == (shape[0], min(shape)) and vh.shape == (min(shape), shape[1])
    np.testing.assert_allclose(lowrank.reconstruct(u, s, vh, len(s)), x, atol=1e-12)


@pytest.mark.parametrize("shape", [(9, 6), (6, 9)])
def test_eckart_young_and_notebook_product(shape):
    x = np.random.default_rng(5).standard_normal(shape)
    u, s, vh = lowrank.svd(x)
    s_np = np.linalg.svd(x, compute_uv=False)
    np.testing.assert_allclose(s, s_np, rtol=1e-12)
    for k in range(1, len(s) + 1):
        xk = lowrank.reconstruct(u, s, vh, k)
        np.testing.assert_allclose(xk, notebook_reconstruction(x, k), atol=1e-10)
        assert np.linalg.norm(x - xk) == pytest.approx(np.sqrt(np.sum(s_np[k:] ** 2)), abs=1e-10)
        assert np.linalg.matrix_rank(xk) == k


def test_torch_reconstruction_matches_numpy():
    x = np.random.default_rng(6).standard_normal((8, 5))
    u, s, vh = lowrank.svd(torch.tensor(x))
    assert isinstance(u, torch.Tensor)
    np.testing.assert_allclose(lowrank.reconstruct(u, s, vh, 3).numpy(), notebook_reconstruction(x, 3), atol=1e-10)


def independent_reduce(x: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """Double-centre, full SVD, smallest k reaching the threshold, U @ S @ Vh plus the means."""
    rows = x.mean(axis=1, keepdims=True)
    cols = x.mean(axis=0, keepdims=True)
    grand = x.mean()
    centred = x - cols - rows + grand
    s = np.linalg.svd(centred, compute_uv=False)
    k = smallest_k(s, threshold)
    return notebook_reconstruction(centred, k) + cols + rows - grand, k


@pytest.mark.parametrize("threshold", [30, 60, 90, 99])
def test_reduce_matrix_against_independent_numpy(threshold):
    x = np.random.default_rng(7).standard_normal((10, 16)) * np.linspace(3, 0.1, 16)
    expected, k = independent_reduce(x, threshold)
    out, got_k, kept = reduce_matrix(x, Reduction(threshold=threshold))
    assert got_k == k
    np.testing.assert_allclose(out, expected, atol=1e-10)
    rows = x.mean(axis=1, keepdims=True)
    centred = x - x.mean(axis=0, keepdims=True) - rows + x.mean()
    s2 = np.linalg.svd(centred, compute_uv=False) ** 2
    assert kept == pytest.approx(100 * s2[:k].sum() / s2.sum(), rel=1e-10)
    assert kept >= threshold
    # the input is left alone
    assert not np.allclose(out, x)


def test_reduce_matrix_exclude_first_keeps_row_zero():
    x = np.random.default_rng(8).standard_normal((9, 12))
    x[0] *= 50  # a massive first token
    out, k, _ = reduce_matrix(x, Reduction(threshold=80, exclude_first=True))
    np.testing.assert_array_equal(out[0], x[0])
    expected, k_expected = independent_reduce(x[1:], 80)
    assert k == k_expected
    np.testing.assert_allclose(out[1:], expected, atol=1e-10)


def test_reduce_matrix_exclude_first_of_a_single_row():
    with pytest.raises(HsviewerError, match="first token"):
        reduce_matrix(np.ones((1, 4)), Reduction(exclude_first=True))


def test_random_basis_keeps_less_variance_than_the_top_basis():
    x = np.random.default_rng(9).standard_normal((12, 20)) * np.linspace(4, 0.1, 20)
    top, k_top, kept_top = reduce_matrix(x, Reduction(threshold=80))
    rnd, k_rnd, kept_rnd = reduce_matrix(x, Reduction(threshold=80, basis="random"))
    assert k_rnd == k_top
    assert kept_rnd < kept_top
    # the random reconstruction is a projection of the centred rows onto k random directions
    centred = lowrank.center(x, "double")
    resid = rnd - centred.offset
    assert np.linalg.matrix_rank(resid) == k_top
    assert np.linalg.norm(x - rnd) > np.linalg.norm(x - top)
    assert 100 * np.sum(resid**2) / np.sum(centred.data**2) == pytest.approx(kept_rnd, rel=1e-9)
    # the same seed gives the same subspace, another seed another
    again = reduce_matrix(x, Reduction(threshold=80, basis="random"))[0]
    other = reduce_matrix(x, Reduction(threshold=80, basis="random", seed=1))[0]
    np.testing.assert_array_equal(again, rnd)
    assert not np.allclose(other, rnd)
