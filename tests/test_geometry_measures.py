"""The geometry measures on synthetic data of known answer and against the numpy references of
tests/geometry_reference.py; their JSON (null, never NaN), and runs saved before them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hsviewer.core.analyses.corpus.results import CorpusResult
from hsviewer.core.analyses.reduce.results import HiddenReduction
from hsviewer.core.analyses.sweep.results import LayerResult, SweepResult
from hsviewer.core.linalg import geometry
from hsviewer.core.linalg.geometry import anisotropy, linearity, prompt_entropy, twonn_dimension
from hsviewer.core.linalg.measures import GEOMETRY, MassiveActivation, SpectrumMeasures, measure
from hsviewer.core.linalg.reduction import Reduction
from tests import geometry_reference as ref


def rotation(n: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def embed(points: np.ndarray, dims: int, rng: np.random.Generator) -> np.ndarray:
    """The points in the first columns of `dims`, then turned by a random rotation."""
    padded = np.zeros((len(points), dims))
    padded[:, : points.shape[1]] = points
    return padded @ rotation(dims, rng)


# TwoNN --------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 5, 10])
def test_twonn_finds_the_dimension_of_a_linear_subspace(d):
    rng = np.random.default_rng(d)
    x = embed(rng.standard_normal((2000, d)), 300, rng)
    assert twonn_dimension(x) == pytest.approx(d, rel=0.15)


@pytest.mark.parametrize("d", [2, 5])
def test_twonn_finds_the_dimension_of_a_sphere(d):
    rng = np.random.default_rng(10 + d)
    on_sphere = rng.standard_normal((2000, d + 1))
    on_sphere /= np.linalg.norm(on_sphere, axis=1, keepdims=True)  # the d-sphere, curved in d + 1 dims
    assert twonn_dimension(embed(on_sphere, 200, rng)) == pytest.approx(d, rel=0.15)


def test_twonn_finds_a_swiss_roll_two_dimensional():
    rng = np.random.default_rng(3)
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=2000))
    roll = np.stack([t * np.cos(t), 21 * rng.uniform(size=2000), t * np.sin(t)], axis=1)
    assert twonn_dimension(embed(roll, 500, rng)) == pytest.approx(2, rel=0.15)


@pytest.mark.parametrize("shape", [(300, 40), (60, 500), (25, 8)])
def test_twonn_matches_the_reference(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape) * np.linspace(1, 5, shape[1])  # some directions wider than others
    assert twonn_dimension(x) == pytest.approx(ref.twonn(x), rel=1e-9)


def test_twonn_drops_duplicated_points():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((100, 30))
    doubled = np.vstack([x, x[:15]])  # 15 points twice: r1 = 0 for each of their 30 rows
    got = twonn_dimension(doubled[rng.permutation(len(doubled))])
    assert got == pytest.approx(ref.twonn(doubled), rel=1e-9)
    assert got != pytest.approx(twonn_dimension(x), rel=1e-6)  # the dropped rows changed the fit
    assert twonn_dimension(np.vstack([x[:30], x[:30]])) is None  # every point has a duplicate


def test_twonn_needs_twenty_usable_points():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((20, 10))
    assert twonn_dimension(x[:19]) is None
    assert twonn_dimension(x) == pytest.approx(ref.twonn(x), rel=1e-9)
    assert twonn_dimension(np.vstack([x[:19], x[:1]])) is None  # 20 rows, 18 without a duplicate
    assert twonn_dimension(np.zeros((50, 4))) is None


def test_twonn_gives_the_same_a_few_rows_at_a_time(monkeypatch):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((257, 33))
    whole = twonn_dimension(x)
    blocks = []
    partition = np.argpartition

    def counted(a, *args, **kwargs):
        blocks.append(a.shape)
        return partition(a, *args, **kwargs)

    monkeypatch.setattr(geometry, "CHUNK_BYTES", 8 * 257 * 3)  # three rows' squared distances per block
    monkeypatch.setattr(geometry.np, "argpartition", counted)
    assert twonn_dimension(x) == whole
    assert len(blocks) == 86 and max(rows for rows, _ in blocks) == 3


# Prompt entropy -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(30, 50), (80, 20), (40, 40)])
def test_prompt_entropy_matches_the_gram_eigenvalues(shape):
    rng = np.random.default_rng(shape[0])
    z = rng.standard_normal(shape) @ np.diag(np.geomspace(1, 30, shape[1])) + 3.0  # uncentred on purpose
    got = prompt_entropy(z)
    want, want_normalised = ref.entropy(z)
    assert got.value == pytest.approx(want, rel=1e-9)
    assert got.normalised == pytest.approx(want_normalised, rel=1e-9)
    assert 0 < got.normalised < 1


def test_prompt_entropy_of_r_equal_directions_is_log_r_and_one_normalised():
    rng = np.random.default_rng(7)
    r = 6
    z = 4.0 * rotation(40, rng)[:r].T @ rotation(r, rng)  # 40 x 6, singular values all 4
    got = prompt_entropy(z)
    assert got.value == pytest.approx(math.log(r), rel=1e-12)
    assert got.normalised == pytest.approx(1.0, rel=1e-12)


def test_prompt_entropy_of_rank_one_and_of_zero_is_zero():
    rng = np.random.default_rng(8)
    got = prompt_entropy(np.outer(rng.standard_normal(30), rng.standard_normal(12)))
    assert got.value == pytest.approx(0.0, abs=1e-12) and got.normalised == 0.0
    assert prompt_entropy(np.zeros((5, 3))) == (0.0, 0.0)


# Linearity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(40, 64), (100, 16)])
def test_a_rotated_shifted_scaled_layer_is_linear(shape):
    rng = np.random.default_rng(shape[0])
    x = rng.standard_normal(shape) * np.linspace(0.1, 3, shape[1])
    y = 2.5 * x @ rotation(shape[1], rng) + rng.standard_normal(shape[1])  # column shift: centring removes it
    assert linearity(x, y) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("shape", [(40, 64), (100, 16), (30, 30)])
def test_linearity_matches_the_procrustes_residual(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape) * np.linspace(0.1, 3, shape[1])
    y = np.tanh(x @ rng.standard_normal((shape[1], shape[1]))) + 0.3 * rng.standard_normal(shape)
    got = linearity(x, y)
    assert got == pytest.approx(ref.procrustes(x, y), rel=1e-9)
    assert 0 < got < 1


def test_independent_noise_is_far_from_linear():
    rng = np.random.default_rng(9)
    assert linearity(rng.standard_normal((400, 16)), rng.standard_normal((400, 16))) < 0.3  # tokens > dims
    # tokens < dims: a structured (rank-3) layer against isotropic noise. Two isotropic clouds with
    # fewer points than dimensions have nearly the same shape, and score high (about 0.9 here):
    # the orthogonal map has room to turn any such cloud onto another.
    structured = rng.standard_normal((100, 3)) @ rng.standard_normal((3, 256))
    assert linearity(structured, rng.standard_normal((100, 256))) < 0.3
    assert linearity(rng.standard_normal((100, 256)), rng.standard_normal((100, 256))) > 0.8


def test_linearity_of_a_layer_without_variance_is_none():
    rng = np.random.default_rng(10)
    assert linearity(np.ones((10, 4)), rng.standard_normal((10, 4))) is None


# Anisotropy ---------------------------------------------------------------------------------


def test_anisotropy_is_one_for_rank_one_and_one_over_n_for_a_flat_spectrum():
    rng = np.random.default_rng(11)
    s = np.linalg.svd(np.outer(rng.standard_normal(20), rng.standard_normal(9)), compute_uv=False)
    assert anisotropy(s) == pytest.approx(1.0, abs=1e-12)
    assert anisotropy(np.full(8, 2.0)) == pytest.approx(1 / 8)
    assert anisotropy(np.zeros(3)) == 0.0
    isotropic = rng.standard_normal((5000, 10))
    spectrum = np.linalg.svd(isotropic - isotropic.mean(0), compute_uv=False)
    assert anisotropy(spectrum) == pytest.approx(1 / 10, rel=0.15)


# The JSON, and runs saved before the geometry ------------------------------------------------


def spike(ratio: float = 3.0) -> MassiveActivation:
    return MassiveActivation(ratio=ratio, token=0, dimension=1, value=5.0)


def test_measure_round_trips_and_writes_null_for_what_it_cannot_say():
    rng = np.random.default_rng(12)
    hidden, following = rng.standard_normal((10, 6)), rng.standard_normal((10, 6))  # 10 tokens: no TwoNN
    got = measure(np.linalg.svd(hidden, compute_uv=False), hidden, following=following)
    data = json.loads(json.dumps(got.to_dict(), allow_nan=False))
    assert data["twonn_dimension"] is None and data["linearity"] == pytest.approx(ref.procrustes(hidden, following))
    assert SpectrumMeasures.from_dict(data) == got
    last = measure(np.linalg.svd(hidden, compute_uv=False), hidden)
    assert last.linearity is None and last.to_dict()["linearity"] is None
    odd = SpectrumMeasures(participation_ratio=1, effective_rank=1, massive_activation=spike(), anisotropy=math.nan)
    assert odd.to_dict()["anisotropy"] is None


OLD_LAYER = {
    "layer": 0, "components": 2, "variance_kept": 96.0, "hidden_diff_norm": 1.0, "logit_diff_norm": 2.0,
    "loss": 3.5, "kl_divergence": 0.1, "token_diff_norms": [0.5, 0.5],
    "participation_ratio": 1.5, "effective_rank": 2.0,
    "massive_activation": {"ratio": 250.0, "token": 0, "dimension": 3, "value": -40.0},
}  # fmt: skip
OLD_SWEEP = {
    "kind": "sweep", "model": "m", "tokens": ["a", "b"], "n_layers": 2, "threshold": 95.0, "fixed_components": None,
    "centering": "double", "clean_loss": 3.0, "method": "prefix", "cancelled": False, "warnings": [],
    "layers": [OLD_LAYER, {**OLD_LAYER, "layer": 1}],
}  # fmt: skip


def test_a_sweep_saved_before_the_geometry_opens_with_none_and_writes_null():
    result = SweepResult.from_dict(json.loads(json.dumps(OLD_SWEEP)))
    assert all(r.measures is not None and r.measures.anisotropy is None for r in result.layers)
    data = result.to_dict()
    assert all(data["layers"][i][name] is None for i in range(2) for name in GEOMETRY)
    assert data["massive_activation_onset"] == {"layer": 0, "threshold": 100.0}  # from its saved ratios
    older = {**OLD_SWEEP, "layers": [{k: v for k, v in OLD_LAYER.items() if k[:4] not in ("part", "effe", "mass")}]}
    assert SweepResult.from_dict({**older, "n_layers": 1}).to_dict()["massive_activation_onset"]["layer"] is None


def test_a_reduction_saved_before_the_geometry_opens():
    data = {
        "kind": "reduce", "model": "m", "tokens": ["a", "b"], "layer": 0, "n_layers": 2, "centering": "double",
        "threshold": 95.0, "components": 1, "variance_kept": 99.0, "correlation": 0.9, "rank_original": 2,
        "rank_reconstruction": 1, "clean_loss": 3.0, "loss": 3.1, "logit_diff_norm": 1.0, "kl_divergence": 0.01,
        **{k: OLD_LAYER[k] for k in ("participation_ratio", "effective_rank", "massive_activation")},
    }  # fmt: skip
    arrays = {name: np.zeros((2, 2)) for name in ("original", "reconstruction", "u", "vh")}
    result = HiddenReduction.from_dict(data, {**arrays, "s": np.ones(2), "diff_norms": np.zeros(2)})
    assert result.measures.twonn_dimension is None and result.to_dict()["prompt_entropy"] is None


def layer(number: int, ratio: float, **geometry_values: float | None) -> LayerResult:
    measures = SpectrumMeasures(
        participation_ratio=1.0, effective_rank=1.0, massive_activation=spike(ratio), **geometry_values
    )
    return LayerResult.from_dict({**OLD_LAYER, "layer": number, **measures.to_dict()}, [], [])


def sweep(layers: list[LayerResult]) -> SweepResult:
    return SweepResult(model="m", tokens=["a", "b", "c"], n_layers=len(layers), reduction=Reduction(), clean_loss=3.0,
                       layers=layers)  # fmt: skip


def test_the_onset_is_the_first_layer_over_a_hundred_medians_in_every_run():
    result = sweep([layer(0, 5.0), layer(1, 100.0), layer(2, 150.0), layer(3, 2000.0)])
    result.controls["shuffled"] = sweep([layer(0, 5.0), layer(1, math.inf), layer(2, 1.0), layer(3, 1.0)])
    data = result.to_dict()
    assert data["massive_activation_onset"] == {"layer": 2, "threshold": 100.0}  # 100 itself is not over
    assert data["controls"]["shuffled"]["massive_activation_onset"]["layer"] == 1  # inf: a zero median
    assert sweep([layer(0, 5.0), layer(1, 99.0)]).to_dict()["massive_activation_onset"]["layer"] is None


def test_the_corpus_aggregate_leaves_out_the_texts_without_a_value():
    texts = [
        sweep([layer(0, 500.0, twonn_dimension=4.0, linearity=0.9), layer(1, 1.0, twonn_dimension=6.0)]),
        sweep([layer(0, 1.0, twonn_dimension=None, linearity=0.7), layer(1, 300.0, twonn_dimension=8.0)]),
        sweep([layer(0, 1.0, twonn_dimension=5.0, linearity=0.8), layer(1, 1.0, twonn_dimension=None)]),
    ]
    corpus = CorpusResult(model="m", n_layers=2, hidden_size=8, reduction=Reduction(), source="s",
                          names=["a", "b", "c"], texts=texts)  # fmt: skip
    data = json.loads(json.dumps(corpus.to_dict(), allow_nan=False))
    first, second = data["aggregate"]["layers"]
    assert first["twonn_dimension_mean"] == pytest.approx(4.5) and first["twonn_dimension_n"] == 2
    half = 12.706 * np.std([4.0, 5.0], ddof=1) / math.sqrt(2)  # t(0.975, 1)
    np.testing.assert_allclose(first["twonn_dimension_ci95"], [4.5 - half, 4.5 + half])
    assert second["twonn_dimension_mean"] == pytest.approx(7.0) and first["n"] == 3
    assert first["linearity_mean"] == pytest.approx(0.8) and first["linearity_n"] == 3
    assert second["linearity_mean"] is None and second["linearity_ci95"] is None and second["linearity_n"] == 0
    assert second["anisotropy_n"] == 0  # none of these layers has one
    onset = data["aggregate"]["massive_activation_onset"]
    assert onset["layers"] == [0, 1, None] and onset["threshold"] == 100.0 and onset["n"] == 2
    assert onset["mean"] == pytest.approx(0.5)
    assert CorpusResult.from_dict(data).to_dict() == data
