"""Controls beyond the first token (issue 19, item 2): exclude_first:N and exclude_massive[:RATIO].

Each reduction is checked against a numpy reference written here: the rows the basis is built
from are chosen by hand (the first N, or those whose largest |entry| passes RATIO x the median
|entry|), reduced with tests.core_helpers.reference_reduce, and the other rows left as they were.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hsviewer.core import HsviewerError, Reduction, layer_sweep
from hsviewer.core.analyses.corpus.results import CorpusResult
from hsviewer.core.analyses.corpus.run import iter_corpus_sweep
from hsviewer.core.analyses.corpus.texts import CorpusText
from hsviewer.core.analyses.kind import sweep_label
from hsviewer.core.analyses.sweep.results import SweepResult
from hsviewer.core.analyses.sweep.spec import SweepSpec
from hsviewer.core.choices import CONTROL_SPELLINGS, control_labels, parse_control
from hsviewer.core.events import run_to_end
from hsviewer.core.library.compare import compare
from hsviewer.core.library.provenance import provenance
from hsviewer.core.library.store import Library
from hsviewer.core.linalg import lowrank
from hsviewer.core.linalg.measures import massive_activation
from hsviewer.core.linalg.reduction import decompose, massive_rows, reduce_matrix
from tests.core_helpers import reference_reduce, run_with_block_output
from tests.support import TEXT

THRESHOLD = 90.0


def by_hand(x: np.ndarray, basis: list[int], threshold: float = THRESHOLD) -> tuple[np.ndarray, int]:
    """x with the rows `basis` reduced from their own SVD (double centring) and the others as they were."""
    out = np.array(x, dtype=np.float64)
    recon, k, _, _ = reference_reduce(out[basis], threshold)
    out[basis] = recon
    return out, k


def planted(seed: int = 3) -> np.ndarray:
    """12 tokens x 16 dims of unit noise with huge entries planted on tokens 0, 5 and 9 (the known answer)."""
    x = np.random.default_rng(seed).standard_normal((12, 16)) * np.linspace(2, 0.2, 16)
    x[0, 3], x[5, 7], x[9, 0] = 400.0, -900.0, 250.0
    return x


# --- the spellings ----------------------------------------------------------------------------------


def test_control_spellings_and_their_labels():
    assert control_labels(["exclude_first", "exclude_first:4", "exclude_massive", "random", "shuffled"]) == [
        "exclude_first",
        "exclude_first:4",
        "exclude_massive:100",
        "random",
        "shuffled",
    ]
    assert control_labels([" exclude_first:1 ", "exclude_massive:2.5", "exclude_massive:1e3"]) == [
        "exclude_first",
        "exclude_massive:2.5",
        "exclude_massive:1000",
    ]
    assert control_labels(["exclude_massive:5.227641234567891"]) == ["exclude_massive:5.227641234567891"]
    assert parse_control("exclude_first:04").value == 4
    assert [parse_control(label).label for label in ("exclude_first:4", "exclude_massive:100")] == [
        "exclude_first:4",
        "exclude_massive:100",
    ]  # a label spells its own control


@pytest.mark.parametrize(
    "spelling",
    [
        "bogus",
        "exclude_first:0",
        "exclude_first:x",
        "exclude_first:-1",
        "exclude_first:",
        "exclude_first:2.5",
        "exclude_first:²",
        "exclude_massive:1",
        "exclude_massive:0.5",
        "exclude_massive:-200",
        "exclude_massive:abc",
        "exclude_massive:nan",
        "exclude_massive:inf",
        "random:2",
        "shuffled:",
    ],
)
def test_bad_spellings_are_refused_with_the_allowed_ones(spelling):
    with pytest.raises(HsviewerError) as caught:
        control_labels([spelling])
    assert repr(spelling) in str(caught.value) and CONTROL_SPELLINGS in str(caught.value)


def test_the_same_control_twice_is_refused():
    with pytest.raises(HsviewerError, match=r"exclude_first.*twice"):
        control_labels(["exclude_first", "exclude_first:1"])
    with pytest.raises(HsviewerError, match="twice"):
        control_labels(["exclude_massive", "exclude_massive:100"])


def test_a_reduction_takes_counts_and_ratios_and_refuses_nonsense():
    assert Reduction(exclude_first=True) == Reduction(exclude_first=1)  # as runs saved before counts say
    assert Reduction(exclude_first=False).exclude_first == 0
    assert Reduction(exclude_massive=100).exclude_massive == 100.0
    for bad in ({"exclude_first": -1}, {"exclude_first": 1.5}, {"exclude_first": "4"}):
        with pytest.raises(HsviewerError, match="Exclude first"):
            Reduction(**bad)
    for ratio in (1, 0.5, float("nan"), float("inf"), True, "100"):
        with pytest.raises(HsviewerError, match="Exclude massive"):
            Reduction(exclude_massive=ratio)


def test_options_write_one_and_zero_as_before_and_counts_and_ratios_as_numbers():
    assert Reduction().options() == {"exclude_first": False, "basis": "top", "seed": 0}
    assert Reduction(exclude_first=1).options()["exclude_first"] is True
    assert Reduction(exclude_first=4, exclude_massive=50).options() == {
        "exclude_first": 4,
        "basis": "top",
        "seed": 0,
        "exclude_massive": 50.0,
    }
    for reduction in (Reduction(exclude_first=4), Reduction(exclude_massive=7.5), Reduction(exclude_first=True)):
        assert Reduction.from_dict({"threshold": 95.0, **reduction.options()}) == reduction
    assert Reduction.from_dict({"threshold": 95.0}) == Reduction()  # saved before the options


# --- exclude_first:N --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 4])
def test_exclude_first_n_reduces_the_rows_after_n_and_leaves_the_first_n(n):
    x = planted()
    out, k, _ = reduce_matrix(x, Reduction(threshold=THRESHOLD, exclude_first=n))
    expected, k_expected = by_hand(x, list(range(n, len(x))))
    np.testing.assert_array_equal(out[:n], x[:n])
    assert k == k_expected
    np.testing.assert_allclose(out, expected, atol=1e-9)


def old_exclude_first(x, threshold: float = THRESHOLD):
    """The reduction under exclude_first=True as the code before counts made it: rows[1:], step by step."""
    centered = lowrank.center(x[1:], "double")
    u, s, vh = lowrank.svd(centered.data)
    k = lowrank.choose_components(s, threshold, None)
    out = x.copy() if isinstance(x, np.ndarray) else x.clone()
    out[1:] = centered.restore(lowrank.reconstruct(u, s, vh, k))
    return out, k


@pytest.mark.parametrize("to_matrix", [np.asarray, lambda x: torch.as_tensor(x, dtype=torch.float32)])
def test_exclude_first_one_is_the_old_code_path_bit_for_bit(to_matrix):
    x = to_matrix(planted())
    dec = decompose(x, Reduction(threshold=THRESHOLD, exclude_first=1))
    assert dec.rows == slice(1, None) and dec.excluded == []
    got, k, _ = reduce_matrix(x, Reduction(threshold=THRESHOLD, exclude_first=1))
    old, old_k = old_exclude_first(x)
    assert k == old_k
    np.testing.assert_array_equal(np.asarray(got), np.asarray(old))


def test_too_few_tokens_for_exclude_first_names_n_and_the_count():
    with pytest.raises(HsviewerError, match=r"first 4 tokens.*3 token"):
        reduce_matrix(np.ones((3, 5)), Reduction(exclude_first=4))
    with pytest.raises(HsviewerError, match=r"first 3 tokens.*3 token"):
        reduce_matrix(np.ones((3, 5)), Reduction(exclude_first=3))
    reduce_matrix(np.random.default_rng(0).standard_normal((3, 5)), Reduction(exclude_first=2))  # one row left


# --- exclude_massive ---------------------------------------------------------------------------------


def test_exclude_massive_leaves_out_exactly_the_planted_rows():
    x = planted()
    dec = decompose(x, Reduction(threshold=THRESHOLD, exclude_massive=100))
    assert dec.excluded == [0, 5, 9]
    out, _ = dec.reconstruct(dec.choose_components(Reduction(threshold=THRESHOLD)), Reduction(threshold=THRESHOLD))
    for row in (0, 5, 9):
        np.testing.assert_array_equal(out[row], x[row])
    expected, k_expected = by_hand(x, [i for i in range(12) if i not in (0, 5, 9)])
    np.testing.assert_allclose(out, expected, atol=1e-9)
    assert dec.choose_components(Reduction(threshold=THRESHOLD)) == k_expected


def test_exclude_massive_after_exclude_first_lists_only_the_rows_after_n():
    x = planted()
    dec = decompose(x, Reduction(threshold=THRESHOLD, exclude_first=2, exclude_massive=100))
    assert dec.excluded == [5, 9]  # token 0 is left out as one of the first two
    out, _ = dec.reconstruct(dec.choose_components(Reduction(threshold=THRESHOLD)), Reduction(threshold=THRESHOLD))
    expected, _ = by_hand(x, [i for i in range(2, 12) if i not in (5, 9)])
    np.testing.assert_allclose(out, expected, atol=1e-9)
    np.testing.assert_array_equal(out[[0, 1, 5, 9]], x[[0, 1, 5, 9]])


def test_exclude_massive_on_a_torch_tensor_leaves_out_the_same_rows():
    x = planted()
    t = torch.as_tensor(x, dtype=torch.float32)
    dec = decompose(t, Reduction(threshold=THRESHOLD, exclude_massive=100))
    assert dec.excluded == [0, 5, 9]
    out, _ = dec.reconstruct(dec.choose_components(Reduction(threshold=THRESHOLD)), Reduction(threshold=THRESHOLD))
    assert torch.equal(out[[0, 5, 9]], t[[0, 5, 9]])
    expected, _ = by_hand(x, [i for i in range(12) if i not in (0, 5, 9)])
    np.testing.assert_allclose(out.double().numpy(), expected, atol=1e-3)


def test_the_median_is_that_of_the_massive_activation_measure():
    """The largest row passes RATIO exactly when the measure's ratio does: the same median."""
    x = np.random.default_rng(5).standard_normal((9, 7))
    spike = massive_activation(x)
    assert spike.token in massive_rows(x, spike.ratio * 0.999)
    assert massive_rows(x, spike.ratio * 1.001) == []
    by_row = np.abs(x).max(axis=1) / np.median(np.abs(x))
    assert massive_rows(x, 2.0) == [i for i in range(9) if by_row[i] > 2.0]


def test_a_ratio_that_excludes_nothing_is_the_plain_reduction():
    x = planted()
    plain = reduce_matrix(x, Reduction(threshold=THRESHOLD))
    none_out = reduce_matrix(x, Reduction(threshold=THRESHOLD, exclude_massive=1e6))
    np.testing.assert_array_equal(none_out[0], plain[0])
    assert none_out[1:] == plain[1:]


def test_every_row_massive_is_a_clear_error():
    x = np.zeros((4, 6))
    x[np.arange(4), np.arange(4)] = 5.0  # the median is 0: every row passes
    with pytest.raises(HsviewerError, match="none are left"):
        reduce_matrix(x, Reduction(exclude_massive=100))


# --- sweeps on a tiny model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def handle(tiny_handle):
    return tiny_handle("llama")


@pytest.fixture(scope="module")
def clean(handle):
    """The token ids and each block's clean output (T, D) in float64, by my own hooks."""
    ids = torch.tensor([handle.tokenizer(TEXT)["input_ids"]])
    outputs = {}
    hooks = [
        b.register_forward_hook(
            lambda m, a, out, i=i: outputs.__setitem__(i, (out if torch.is_tensor(out) else out[0])[0].double().numpy())
        )
        for i, b in enumerate(handle.blocks)
    ]
    try:
        with torch.no_grad():
            handle.model(ids)
    finally:
        for h in hooks:
            h.remove()
    return ids, outputs


def massive_by_hand(hs: np.ndarray, ratio: float) -> list[int]:
    magnitude = np.abs(hs)
    return [i for i in range(len(hs)) if magnitude[i].max() > ratio * np.median(magnitude)]


@pytest.fixture(scope="module")
def ratio(clean):
    """A ratio that leaves out some tokens of some layer, and not every token of any: between the largest
    row ratios of the text's layers."""
    _, outputs = clean
    tops = sorted(np.abs(hs).max() / np.median(np.abs(hs)) for hs in outputs.values())
    return float(0.98 * tops[-1])


@pytest.fixture(scope="module")
def swept(handle, ratio):
    return layer_sweep(
        handle, TEXT, Reduction(threshold=THRESHOLD), controls=["exclude_first:4", f"exclude_massive:{ratio}"]
    )


def test_a_sweep_runs_exclude_first_n_against_the_reference(handle, clean, swept):
    ids, outputs = clean
    run = swept.controls["exclude_first:4"]
    assert run.reduction.exclude_first == 4
    for layer, result in zip(range(handle.n_layers), run.layers, strict=True):
        hs = outputs[layer]
        recon, k = by_hand(hs, list(range(4, len(hs))))
        _, loss = run_with_block_output(handle, ids, layer, recon)
        assert result.components == k and result.excluded_tokens is None
        assert result.loss == pytest.approx(loss, abs=1e-4)
        np.testing.assert_allclose(result.token_diff_norms[:4], 0.0, atol=1e-6)  # the first four unchanged


def test_a_sweep_lists_each_layers_massive_tokens_and_reduces_without_them(handle, clean, swept, ratio):
    ids, outputs = clean
    run = swept.controls[f"exclude_massive:{ratio!r}"]
    listed = [layer.excluded_tokens for layer in run.layers]
    expected = [massive_by_hand(outputs[layer], ratio) for layer in range(handle.n_layers)]
    assert listed == expected and any(listed)
    for layer, result in enumerate(run.layers):
        hs = outputs[layer]
        recon, k = by_hand(hs, [i for i in range(len(hs)) if i not in expected[layer]])
        _, loss = run_with_block_output(handle, ids, layer, recon)
        assert result.components == k
        assert result.loss == pytest.approx(loss, abs=1e-4)
        assert all(result.token_diff_norms[i] == 0.0 for i in expected[layer])
    data = swept.to_dict()
    assert [r["excluded_tokens"] for r in data["controls"][f"exclude_massive:{ratio!r}"]["layers"]] == expected
    assert all("excluded_tokens" not in r for r in data["layers"])  # absent for other runs
    assert data["controls"]["exclude_first:4"]["exclude_first"] == 4
    assert SweepResult.from_dict(json.loads(json.dumps(data))) == swept


def test_exclude_first_one_as_a_count_is_the_plain_control(handle):
    plain = layer_sweep(handle, TEXT, Reduction(threshold=THRESHOLD), controls=["exclude_first"])
    counted = layer_sweep(handle, TEXT, Reduction(threshold=THRESHOLD), controls=["exclude_first:1"])
    assert list(counted.controls) == ["exclude_first"] and counted.to_dict() == plain.to_dict()
    assert plain.to_dict()["controls"]["exclude_first"]["exclude_first"] is True  # as saved before counts


def test_a_ratio_that_excludes_nothing_reproduces_the_plain_run(handle):
    result = layer_sweep(handle, TEXT, Reduction(threshold=THRESHOLD), controls=["exclude_massive:1e9"])
    control = result.controls["exclude_massive:1000000000"]
    assert [r.excluded_tokens for r in control.layers] == [[]] * handle.n_layers
    for main, other in zip(result.layers, control.layers, strict=True):
        mine = {k: v for k, v in other.to_dict().items() if k != "excluded_tokens"}
        assert mine == main.to_dict()


def test_the_hooks_method_agrees_with_the_prefix_one(handle, swept, ratio):
    hooked = layer_sweep(
        handle, TEXT, Reduction(threshold=THRESHOLD), method="hooks", controls=[f"exclude_massive:{ratio}"]
    )
    label = f"exclude_massive:{ratio!r}"
    for a, b in zip(hooked.controls[label].layers, swept.controls[label].layers, strict=True):
        assert a.excluded_tokens == b.excluded_tokens and a.components == b.components
        assert a.loss == pytest.approx(b.loss, abs=1e-4)


@pytest.mark.parametrize("setting", ["first", "massive"])
def test_a_grid_setting_with_other_exclusions_gets_its_own_basis(handle, ratio, setting):
    other = {"first": {"exclude_first": 4}, "massive": {"exclude_massive": ratio}}[setting]
    grid = [Reduction(threshold=THRESHOLD, **other)]
    result = layer_sweep(handle, TEXT, Reduction(threshold=THRESHOLD), grid=grid)
    alone = layer_sweep(handle, TEXT, grid[0])
    assert [r.grid_loss[0] for r in result.layers] == pytest.approx([r.loss for r in alone.layers], abs=1e-5)
    assert [r.grid_loss[0] for r in result.layers] != pytest.approx([r.loss for r in result.layers], abs=1e-5)


def test_a_text_too_short_for_exclude_first_n_is_refused_before_any_run(handle):
    with pytest.raises(HsviewerError, match=r"first 9 tokens.*4 token"):
        next(iter(layer_sweep_events(handle, "the museum of art", ["exclude_first:9"])))


def layer_sweep_events(handle, text, controls):
    from hsviewer.core.analyses.sweep.run import iter_sweep

    return iter_sweep(handle, text, SweepSpec(reduction=Reduction(threshold=THRESHOLD), controls=controls))


# --- corpus, library, labels, compare ------------------------------------------------------------------

TEXTS = [
    CorpusText(name="a", text=TEXT),
    CorpusText(name="b", text="a city square , located close to the north wing of the museum"),
]


@pytest.fixture(scope="module")
def corpus(handle, ratio):
    controls = ["exclude_first:4", f"exclude_massive:{ratio}"]
    return run_to_end(
        iter_corpus_sweep(handle, TEXTS, SweepSpec(reduction=Reduction(threshold=THRESHOLD), controls=controls))
    )


def test_a_corpus_sweeps_the_controls_and_takes_percent_of_rank_from_the_rows_used(handle, corpus, ratio):
    massive = f"exclude_massive:{ratio!r}"
    assert corpus.controls == ["exclude_first:4", massive]
    data = corpus.to_dict()
    d = handle.hidden_size
    for label, rows_used in (
        ("exclude_first:4", lambda run, layer: len(run.tokens) - 4),
        (massive, lambda run, layer: len(run.tokens) - len(layer.excluded_tokens)),
    ):
        runs = [text.controls[label] for text in corpus.texts]
        assert all(len(run.tokens) - 4 < d for run in runs)  # the rows, not d, bound the rank
        for i, row in enumerate(data["aggregate"]["controls"][label]["layers"]):
            percents = [100.0 * run.layers[i].components / min(rows_used(run, run.layers[i]), d) for run in runs]
            assert row["components_percent_mean"] == pytest.approx(np.mean(percents), rel=1e-12)
    assert any(layer.excluded_tokens for text in corpus.texts for layer in text.controls[massive].layers)
    assert CorpusResult.from_dict(json.loads(json.dumps(data))).to_dict() == data


def test_runs_with_the_new_controls_are_saved_listed_labelled_and_compared(tmp_path, handle, swept, corpus):
    library = Library(tmp_path)
    made = provenance(handle, settings={}, texts=[TEXT])
    sweep_info = library.save("sweep", swept, made)
    corpus_info = library.save("corpus", corpus, made)
    assert sweep_info.setting == "90%, 2 controls" and corpus_info.setting == "90%, 2 texts, 2 controls"
    assert library.load(sweep_info.id).result() == swept
    assert library.load(corpus_info.id).result().controls == corpus.controls
    comparison = compare([library.load(sweep_info.id), library.load(corpus_info.id)], "percent_rank")
    assert len(comparison.curves) == 2


def test_the_setting_names_what_the_main_reduction_leaves_out():
    assert sweep_label({"threshold": 95.0, "exclude_first": False}) == "95%"
    assert sweep_label({"threshold": 95.0, "exclude_first": True}) == "95%, exclude_first"
    assert sweep_label({"threshold": 95.0, "exclude_first": 4, "exclude_massive": 100.0}) == (
        "95%, exclude_first:4, exclude_massive:100"
    )


def test_an_old_saved_run_with_exclude_first_true_opens(tmp_path, handle):
    """A run file written before counts: exclude_first true and false, no exclude_massive, no excluded_tokens."""
    result = layer_sweep(handle, TEXT, Reduction(threshold=THRESHOLD), controls=["exclude_first"])
    library = Library(tmp_path)
    info = library.save("sweep", result, provenance(handle, settings={}, texts=[TEXT]))
    envelope = json.loads(info.path.read_text())
    data = envelope["result"]
    assert data["exclude_first"] is False and data["controls"]["exclude_first"]["exclude_first"] is True
    assert "exclude_massive" not in json.dumps(data) and "excluded_tokens" not in json.dumps(data)
    old = {k: v for k, v in data.items() if k not in ("exclude_first", "basis", "seed")}  # older still: no options
    envelope["result"] = old
    info.path.write_text(json.dumps(envelope))
    loaded = Library(tmp_path).load(info.id).result()
    assert loaded.reduction.exclude_first == 0 and loaded.controls["exclude_first"].reduction.exclude_first == 1
    assert all(layer.excluded_tokens is None for layer in loaded.controls["exclude_first"].layers)
    assert loaded.controls["exclude_first"].layers == result.controls["exclude_first"].layers
