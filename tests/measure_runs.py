"""Sweeps made by hand, with known measures at every layer (gaps included), for the pictures of the
measures: no model runs, so each drawn number can be checked against the result's own JSON."""

from __future__ import annotations

from hsviewer.core.analyses.corpus.results import CorpusResult
from hsviewer.core.analyses.sweep.results import LayerResult, SweepResult
from hsviewer.core.linalg.measures import GEOMETRY, MassiveActivation, SpectrumMeasures
from hsviewer.core.linalg.reduction import Reduction

N_LAYERS = 5
RATIOS = (5.0, 50.0, 150.0, 3000.0, 2000.0)  # the first past 100: block 2, the onset
CONTROLS = ("exclude_first:4", "exclude_massive:100", "random", "shuffled")


def layer(index: int, shift: float, tokens: int) -> LayerResult:
    """Block `index` with measures that differ by block and by `shift` (one run from another); TwoNN
    missing at block 1 and linearity at the last block: gaps."""
    measures = SpectrumMeasures(
        participation_ratio=2.0 + index + shift,
        effective_rank=3.0 + 1.5 * index + shift,
        massive_activation=MassiveActivation(ratio=RATIOS[index] * (1 + shift), token=0, dimension=index, value=9.0),
        anisotropy=0.1 + 0.15 * index + shift / 10,
        twonn_dimension=None if index == 1 else 4.0 + index + shift,
        prompt_entropy=1.0 + index / 10,
        prompt_entropy_normalised=0.9 - 0.1 * index - shift / 20,
        linearity=None if index == N_LAYERS - 1 else 0.95 - 0.05 * index - shift / 50,
    )
    return LayerResult(
        layer=index,
        components=2 + index,
        variance_kept=0.9,
        hidden_diff_norm=1.0 + index,
        logit_diff_norm=2.0 + index,
        loss=3.0 + index / 10,
        kl_divergence=0.01 * index,
        token_diff_norms=[0.5] * tokens,
        measures=measures,
    )


def sweep(shift: float = 0.0, controls: tuple[str, ...] = (), tokens: int = 24) -> SweepResult:
    """A finished sweep of N_LAYERS blocks on `tokens` tokens; each control a run of its own shift."""
    words = [f"w{i}" for i in range(tokens)]
    runs = {
        label: SweepResult(
            model="hand-made",
            tokens=words,
            n_layers=N_LAYERS,
            reduction=Reduction(threshold=90.0),
            clean_loss=3.0,
            layers=[layer(i, shift + 0.3 * (n + 1), tokens) for i in range(N_LAYERS)],
        )
        for n, label in enumerate(controls)
    }
    return SweepResult(
        model="hand-made",
        tokens=words,
        n_layers=N_LAYERS,
        reduction=Reduction(threshold=90.0),
        clean_loss=3.0,
        layers=[layer(i, shift, tokens) for i in range(N_LAYERS)],
        controls=runs,
    )


def saved_before_the_measures(data: dict) -> dict:
    """A sweep's JSON as hsviewer wrote it before the geometry measures: no such keys in its layers."""
    old = {**data, "layers": [{k: v for k, v in r.items() if k not in GEOMETRY} for r in data["layers"]]}
    old.pop("massive_activation_onset", None)
    if "controls" in data:
        old["controls"] = {name: saved_before_the_measures(run) for name, run in data["controls"].items()}
    return old


def corpus(
    shifts: tuple[float, ...] = (0.0, 0.2, 0.5), controls: tuple[str, ...] = ("exclude_first:4",)
) -> CorpusResult:
    """A corpus run of one hand-made sweep per shift."""
    texts = [sweep(shift, controls) for shift in shifts]
    return CorpusResult(
        model="hand-made",
        n_layers=N_LAYERS,
        hidden_size=32,
        reduction=Reduction(threshold=90.0),
        source="hand-made",
        names=[f"text {i}" for i in range(len(texts))],
        texts=texts,
        controls=list(controls),
    )
