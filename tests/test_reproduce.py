"""hsviewer reproduce: the core's per-block geometry against numpy references on hidden states my own hooks
capture, the seeded shuffle, cancelling, the aggregate by hand, the verdict rules on synthetic curves with
a known answer, and the command's figures, JSON and page (and bad input exiting 2, nothing written)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from hsviewer.cli import main
from hsviewer.core.analyses.corpus.results import TextSkipped
from hsviewer.core.analyses.corpus.texts import CorpusText
from hsviewer.core.analyses.geometry import findings as rules
from hsviewer.core.analyses.geometry.findings import Findings, document
from hsviewer.core.analyses.geometry.page import page
from hsviewer.core.analyses.geometry.results import (
    GeometryCollector,
    GeometryResult,
    GeometryTextDone,
    LayerGeometry,
    TextGeometry,
)
from hsviewer.core.analyses.geometry.run import iter_reproduction
from hsviewer.core.events import Finished, run_to_end
from tests import geometry_reference as ref
from tests.support import TEXT
from tests.test_core_sweep import clean_run, token_ids

SECOND = (
    "a building by van gogh , located close to the square . the wing of the museum was designed by "
    "architects in the century . it is known as the modern wing"
)  # 32 tokens
TEXTS = [CorpusText(name="one", text=f"{TEXT} {TEXT}"), CorpusText(name="two", text=SECOND)]  # 40 and 32 tokens


def numpy_massive_ratio(x: np.ndarray) -> float:
    magnitude = np.abs(x)
    return float(magnitude.max() / np.median(magnitude))


def seeded_order(n: int, seed: int) -> torch.Tensor:
    """The order the sweep's shuffled control has always used: randperm on a CPU generator seeded so."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def llama(tiny_handle):
    return tiny_handle("llama")


@pytest.fixture(scope="module")
def result(llama):
    return run_to_end(iter_reproduction(llama, TEXTS, source="two texts", seed=3))


def test_every_block_matches_numpy_on_hidden_states_my_hooks_capture(llama, result):
    assert [t.name for t in result.texts] == ["one", "two"] and not result.cancelled
    for text, geometry in zip(TEXTS, result.texts, strict=True):
        ids = token_ids(llama, text.text)
        _, _, outputs = clean_run(llama, ids)
        order = seeded_order(ids.shape[1], 3)
        assert not torch.equal(order, torch.arange(ids.shape[1]))  # the shuffle changes the order
        _, _, mixed = clean_run(llama, ids[:, order])
        assert geometry.tokens == ids.shape[1] >= 20 and len(geometry.layers) == llama.n_layers
        for row in geometry.layers:
            hs = outputs[row.layer]
            assert row.anisotropy == pytest.approx(ref.double_centred_anisotropy(hs), rel=1e-6)
            assert row.anisotropy_without_first == pytest.approx(ref.double_centred_anisotropy(hs, first=1), rel=1e-6)
            assert row.massive_ratio == pytest.approx(numpy_massive_ratio(hs), rel=1e-6)
            assert row.twonn_dimension == pytest.approx(ref.twonn(hs), rel=1e-6)
            assert row.twonn_dimension_shuffled == pytest.approx(ref.twonn(mixed[row.layer]), rel=1e-6)
            assert row.prompt_entropy_normalised == pytest.approx(ref.entropy(hs)[1], rel=1e-6)
            assert row.twonn_dimension_shuffled != pytest.approx(row.twonn_dimension, rel=1e-6)


def test_the_shuffle_is_seeded_the_same_seed_the_same_numbers_another_seed_others(llama, result):
    again = run_to_end(iter_reproduction(llama, TEXTS[:1], seed=3)).texts[0]
    other = run_to_end(iter_reproduction(llama, TEXTS[:1], seed=4)).texts[0]
    assert again == result.texts[0]
    assert [r.twonn_dimension for r in other.layers] == [r.twonn_dimension for r in again.layers]
    assert [r.twonn_dimension_shuffled for r in other.layers] != [r.twonn_dimension_shuffled for r in again.layers]


def test_the_aggregate_is_the_mean_and_t_interval_over_texts_geometric_for_the_ratio(result):
    data = json.loads(json.dumps(document(result), allow_nan=False))
    assert data["kind"] == "reproduction" and data["names"] == ["one", "two"] and data["seed"] == 3
    t = 12.706  # t(0.975, 1): two texts
    for index, row in enumerate(data["aggregate"]):
        assert row["layer"] == index and row["depth"] == pytest.approx(index / 2)
        for name in ("anisotropy", "anisotropy_without_first", "twonn_dimension", "twonn_dimension_shuffled"):
            x = np.array([t_["layers"][index][name] for t_ in data["texts"]])
            half = t * x.std(ddof=1) / math.sqrt(2)
            assert row[f"{name}_mean"] == pytest.approx(x.mean(), rel=1e-9) and row[f"{name}_n"] == 2
            assert row[f"{name}_ci95"] == pytest.approx([x.mean() - half, x.mean() + half], rel=1e-9)
        logs = np.log10([t_["layers"][index]["massive_ratio"] for t_ in data["texts"]])
        half = t * logs.std(ddof=1) / math.sqrt(2)
        assert row["massive_ratio_mean"] == pytest.approx(10 ** logs.mean(), rel=1e-9)
        assert row["massive_ratio_ci95"] == pytest.approx([10 ** (logs.mean() - half), 10 ** (logs.mean() + half)])
        difference = [t_["layers"][index]["twonn_dimension_shuffled"] - t_["layers"][index]["twonn_dimension"]
                      for t_ in data["texts"]]  # fmt: skip
        assert row["twonn_shuffled_minus_plain_mean"] == pytest.approx(np.mean(difference), rel=1e-9)
    assert GeometryResult.from_dict(data).to_dict() == result.to_dict()


def test_cancelling_keeps_the_texts_done(llama):
    events, collector = iter_reproduction(llama, TEXTS), GeometryCollector()
    for event in events:
        collector.add(event)
        if isinstance(event, GeometryTextDone):
            events.close()
            break
    kept = collector.cancelled()
    assert kept is not None and kept.cancelled and [t.name for t in kept.texts] == ["one"]
    assert document(kept)["aggregate"][0]["anisotropy_ci95"] is None  # one text: no interval


def test_a_one_token_text_is_skipped_with_a_note_and_a_short_one_has_no_twonn(llama):
    texts = [CorpusText(name="short", text="museum"), CorpusText(name="few", text=TEXT[:40])]
    events = list(iter_reproduction(llama, texts, notes=["read note"]))
    assert [e.name for e in events if isinstance(e, TextSkipped)] == ["short"]
    final = events[-1]
    assert isinstance(final, Finished) and final.result.notes[0] == "read note"
    assert "short: skipped" in final.result.notes[1]
    few = final.result.texts[0]
    assert few.tokens < 20 and all(r.twonn_dimension is None and r.twonn_dimension_shuffled is None for r in few.layers)
    assert Findings.of(final.result).dimension.verdict == rules.UNKNOWN


def synthetic(anisotropy, ratio, plain, shuffled, texts=3, jitter=0.01) -> GeometryResult:
    """Texts whose curves are the given ones, each text off by a little, so every block has an interval."""
    out = []
    for i in range(texts):
        shift = (i - 1) * jitter
        layers = [
            LayerGeometry(
                layer=b, anisotropy=a + shift, anisotropy_without_first=a / 2 + shift, massive_ratio=r * (1 + shift),
                twonn_dimension=p + shift, twonn_dimension_shuffled=s + shift, prompt_entropy_normalised=0.5,
            )
            for b, (a, r, p, s) in enumerate(zip(anisotropy, ratio, plain, shuffled, strict=True))
        ]  # fmt: skip
        out.append(TextGeometry(name=f"t{i}", tokens=50, layers=layers))
    return GeometryResult(model="m", n_layers=len(anisotropy), hidden_size=8, source="s", seed=0, texts=out)


BELL = [0.1, 0.2, 0.4, 0.6, 0.8, 0.6, 0.4, 0.2, 0.1]
RISING = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
SUN = [20, 3000, 5000, 5000, 5000, 5000, 5000, 4000, 300]  # rise at block 1, plateau, fall
FLAT = [20] * 9
LOW, HIGH = [3, 4, 5, 6, 6, 6, 5, 4, 3], [4, 5, 6, 7, 8, 7, 6, 5, 4]


def test_curves_shaped_as_the_papers_say_agree():
    found = Findings.of(synthetic(BELL, SUN, LOW, HIGH))
    assert found.anisotropy.verdict == rules.AGREES and found.anisotropy.layer == 4 and found.anisotropy.depth == 0.5
    assert found.anisotropy.value == pytest.approx(0.8)
    assert found.massive.verdict == rules.AGREES and found.massive.onset_layer == 1
    assert found.massive.onset_depth == pytest.approx(1 / 8) and found.massive.plateau == pytest.approx(5000, rel=0.01)
    assert found.dimension.verdict == rules.AGREES and found.dimension.above == 9 == found.dimension.blocks
    assert found.dimension.plain == pytest.approx(np.mean(LOW))
    assert found.dimension.shuffled == pytest.approx(np.mean(HIGH))


def test_curves_that_differ_from_the_papers_do_not_agree():
    found = Findings.of(synthetic(RISING, FLAT, HIGH, LOW))
    assert found.anisotropy.verdict == rules.DISAGREES and found.anisotropy.layer == 8
    assert "the peak is the last block" in found.anisotropy.reason
    assert found.massive.verdict == rules.PARTLY and found.massive.onset_layer is None  # flat: a plateau, no rise
    assert "never passes 100" in found.massive.reason and "no fall" in found.massive.reason
    assert found.dimension.verdict == rules.DISAGREES and found.dimension.above == 0
    mesa = [0.1, 0.2, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.3]  # within 5% of the top over 0.62 of the depth
    assert Findings.of(synthetic(mesa, SUN, LOW, HIGH)).anisotropy.verdict == rules.PARTLY


def test_the_page_says_what_the_numbers_say():
    for curves, verdict in (((BELL, SUN, LOW, HIGH), "Agrees"), ((RISING, FLAT, HIGH, LOW), "Does not agree")):
        result = synthetic(*curves)
        found = Findings.of(result)
        text = page(result, found, {s: f"f/{s}.png" for s in ("anisotropy", "massive_activations",
                    "intrinsic_dimension")}, "hsviewer reproduce --texts x", "f/data.json")  # fmt: skip
        assert f"- Every token: {found.anisotropy.reason}. **{verdict}.**" in text
        assert f"{found.dimension.reason}." in text and f"**{found.dimension.verdict.capitalize()}.**" in text
        assert found.massive.reason in text and "other models than the papers'" in text
        assert "![Anisotropy over depth](f/anisotropy.png)" in text and "hsviewer reproduce --texts x" in text


def corpus_folder(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for text in TEXTS:
        (folder / f"{text.name}.txt").write_text(text.text)
    return folder


def test_the_command_writes_the_figures_the_json_and_the_page(tiny_model_dir, tmp_path, capsys):
    from PIL import Image

    out, page_path = tmp_path / "docs" / "reproductions", tmp_path / "docs" / "reproductions.md"
    argv = ["reproduce", "--model", str(tiny_model_dir), "--texts", str(corpus_folder(tmp_path))]
    assert main([*argv, "--out", str(out), "--page", str(page_path), "--device", "cpu"]) == 0
    pictures = sorted(p.name for p in out.glob("*.png"))
    assert pictures == ["anisotropy.png", "intrinsic_dimension.png", "massive_activations.png"]
    for name in pictures:
        with Image.open(out / name) as image:
            assert image.size[0] >= 900 and image.getextrema() != ((255, 255), (255, 255), (255, 255), (255, 255))
    data = json.loads((out / "reproductions.json").read_text())
    assert data["names"] == ["one", "two"] and len(data["aggregate"]) == 3
    text = page_path.read_text()
    for name in pictures:
        assert f"(reproductions/{name})" in text
    found = data["findings"]
    for key in ("anisotropy", "anisotropy_without_first"):
        assert f"{found[key]['reason']}. **{found[key]['verdict'].capitalize()}.**" in text
    assert f"{found['massive']['reason']}." in text and f"{found['dimension']['reason']}." in text
    assert f"hsviewer reproduce --model {tiny_model_dir}" in text and "(reproductions/reproductions.json)" in text
    captured = capsys.readouterr()
    assert "Text 1/2: one" in captured.err and "done: 40 tokens" in captured.err
    assert f"anisotropy, every token: {found['anisotropy']['verdict']}" in captured.out


@pytest.mark.parametrize(
    "flag, value, words",
    [("--model", "no/such/model/here", "no/such/model/here"), ("--texts", "no-such-corpus.txt", "No corpus at")],
)
def test_a_bad_model_or_corpus_exits_2_with_one_line_and_writes_nothing(
    tiny_model_dir, tmp_path, capsys, flag, value, words
):
    options = {"--model": str(tiny_model_dir), "--texts": str(corpus_folder(tmp_path)), flag: value}
    out, page_path = tmp_path / "out", tmp_path / "page.md"
    argv = ["reproduce", *[x for pair in options.items() for x in pair], "--out", str(out), "--page", str(page_path)]
    assert main([*argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hsviewer: error: ") and words in err and "Traceback" not in err
    assert not out.exists() and not page_path.exists()
