"""The Markdown page of a reproduction: for each curve its figure, what the paper reports, what this
model shows (numbers read from the result), the verdict of findings' rules, and the command. Every
sentence about agreement is built from the findings; only the papers' own claims are fixed text."""

from __future__ import annotations

import statistics
from collections.abc import Mapping

from hsviewer.core.analyses.geometry import findings as rules
from hsviewer.core.analyses.geometry.findings import Findings, Peak
from hsviewer.core.analyses.geometry.results import GeometryResult

PAPERS = {
    "anisotropy": (
        "Razzhigaev et al. 2023, *The Shape of Learning: Anisotropy and Intrinsic Dimensions in Transformer-Based "
        "Models* ([arXiv:2311.05928](https://arxiv.org/abs/2311.05928)), measure the anisotropy of the token "
        "embeddings, s₁² / Σ s² of the centred token matrix, layer by layer. In decoders (OPT, Pythia, "
        "LLaMA and others) it is bell-shaped over depth: low in the first layers, highest in the middle, "
        "lower again in the last ones; encoders stay low throughout."
    ),
    "massive_activations": (
        "Sun et al. 2024, *Massive Activations in Large Language Models* "
        "([arXiv:2402.17762](https://arxiv.org/abs/2402.17762)), find a few activations up to about 10,000 "
        "times the median magnitude (LLaMA2, LLaMA3, Mistral, Mixtral, OPT, GPT-2 and others). They appear "
        "abruptly after one of the first layers, stay nearly constant through the middle layers, and fade in "
        "the last few; most sit on the first token."
    ),
    "intrinsic_dimension": (
        "Viswanathan et al. 2025, *The Geometry of Tokens in Internal Representations of Large Language "
        "Models* ([arXiv:2501.10573](https://arxiv.org/abs/2501.10573)), treat one prompt's tokens at a layer "
        "as a point cloud and estimate its intrinsic dimension (ID) over depth (Llama-3-8B, Mistral-7B, "
        "Pythia-6.9B). Shuffling the prompt's tokens, which destroys its syntax and meaning, raises the ID."
    ),
}
TITLES = {
    "anisotropy": "Anisotropy over depth",
    "massive_activations": "Massive activations over depth",
    "intrinsic_dimension": "Intrinsic dimension, as written and shuffled",
}


def page(result: GeometryResult, found: Findings, figures: Mapping[str, str], command: str, data: str) -> str:
    """The page; figures: each figure's stem -> its path relative to the page; data: the JSON's."""
    sections = {
        "anisotropy": _anisotropy(found),
        "massive_activations": _massive(found),
        "intrinsic_dimension": _dimension(found),
    }
    parts = [_head(result, found), _rules()]
    for number, (stem, body) in enumerate(sections.items(), 1):
        parts.append(
            f"## {number}. {TITLES[stem]}\n\n![{TITLES[stem]}]({figures[stem]})\n\n"
            f"**What the paper reports.** {PAPERS[stem]}\n\n{body}"
        )
    parts.append(
        f"## How this page was made\n\n```\n{command}\n```\n\nThe numbers behind every figure and sentence, per "
        f"text and per block, are in [{data}]({data}). Only clean forward passes run: no reduction, no loss."
    )
    return "\n\n".join(parts) + "\n"


def _head(result: GeometryResult, found: Findings) -> str:
    tokens = [text.tokens for text in result.texts]
    verdicts = {
        "anisotropy (every token)": found.anisotropy.verdict if found.anisotropy else rules.UNKNOWN,
        "anisotropy (without the first token)": (
            found.anisotropy_without_first.verdict if found.anisotropy_without_first else rules.UNKNOWN
        ),
        "massive activations": found.massive.verdict,
        "intrinsic dimension, shuffled against written": found.dimension.verdict,
    }
    summary = "\n".join(f"- {name}: **{verdict}**" for name, verdict in verdicts.items())
    notes = "".join(f"\n- {note}" for note in result.notes)
    cancelled = "\n\n**Stopped early**: only the texts listed in the data were read." if result.cancelled else ""
    return (
        f"# Three published curves, reproduced on {result.model}\n\n"
        f"Three papers describe how a decoder's hidden states change shape with depth. This page measures the "
        f"same curves on **{result.model}** ({result.n_layers} blocks, hidden size {result.hidden_size}) over "
        f"**{len(result.texts)} texts** of the corpus `{result.source}` ({min(tokens)} to {max(tokens)} tokens, "
        f"median {statistics.median(tokens):g}). **These are other models than the papers'**: they studied "
        f"OPT, Pythia, LLaMA, Mistral and other models, mostly of billions of parameters, and this one differs "
        f"from each of them in size, data and training. So the comparison is of shapes, qualitatively, "
        f"not of values.\n\nEach block's output is read from one clean forward pass per text (and, for the "
        f"intrinsic dimension, one more on the same tokens in a random order, seed {result.seed}). Every curve "
        f"is the mean over texts against relative depth, block / (blocks − 1), with its 95% interval "
        f"(Student's t over texts) as a band.\n\nWhat the rules below conclude from the numbers:\n\n"
        f"{summary}{cancelled}" + (f"\n\nLeft out:{notes}" if notes else "")
    )


def _rules() -> str:
    return (
        "## The rules\n\nThe verdicts are not written by hand: they follow from the numbers by these rules.\n\n"
        f"- **Anisotropy** is bell-shaped when the mean curve peaks at mid-depth (relative depth "
        f"{rules.MID[0]:g} to {rules.MID[1]:g}), the blocks within {1 - rules.NEAR_PEAK:.0%} of the peak span "
        f"at most {rules.PLATEAU_WIDTH:.2f} of the depth (a peak, not a plateau), and both its first and last "
        f"block are at most {rules.BELL_END:g} times the peak: *agrees*; a peak elsewhere inside, a plateau, or "
        f"an end too high: *partly agrees*; a peak at the first or last block: *does not agree*.\n"
        f"- **Massive activations**: three parts, the curve (the geometric mean over texts) passing "
        f"{rules.MASSIVE_ONSET_RATIO:g} times the median by relative depth {rules.EARLY:.2f} (an early onset), "
        f"staying within a factor {rules.PLATEAU_SPREAD:g} over relative depth {rules.MIDDLE[0]:g} to "
        f"{rules.MIDDLE[1]:g} (a plateau), and ending at most {rules.FALL:g} times the plateau's median (a fall). "
        f"All three: *agrees*; some: *partly agrees*; none: *does not agree*.\n"
        f"- **Intrinsic dimension**: shuffling raises it when the shuffled curve's mean over blocks is above "
        f"the written one's and the shuffled curve is above at {rules.MOST:.0%} of the blocks or more: "
        f"*agrees*; one of the two, or above at over half the blocks: *partly agrees*; else *does not agree*."
    )


def _peak_line(name: str, peak: Peak | None) -> str:
    if peak is None:
        return f"- {name}: no block has a value."
    return f"- {name}: {peak.reason}. **{peak.verdict.capitalize()}.**"


def _anisotropy(found: Findings) -> str:
    every, without = found.anisotropy, found.anisotropy_without_first
    lines = [_peak_line("Every token", every), _peak_line("Without the first token", without)]
    if every is not None and without is not None:
        gap = every.value - without.value
        lines.append(
            f"- The first token moves the peak from block {without.layer} to block {every.layer} and its height "
            f"from {without.value:.3f} to {every.value:.3f} ({gap:+.3f}): "
            + ("much of the anisotropy is that one token." if gap > 0.1 else "it changes little.")
        )
    return (
        "**What this model shows**, with the token matrix double-centred (each token's and each dimension's "
        "mean removed, as hsviewer's default reduction centres it) and with the star at each curve's peak:\n\n"
        + "\n".join(lines)
    )


def _massive(found: Findings) -> str:
    massive = found.massive
    onsets = [x for x in massive.text_onsets if x is not None]
    if onsets:
        blocks = f"block {min(onsets)}" if min(onsets) == max(onsets) else f"block {min(onsets)} to {max(onsets)}"
        per_text = (
            f"Text by text, the first block past {rules.MASSIVE_ONSET_RATIO:g} is {blocks} (median "
            f"{statistics.median(onsets):g}; {len(onsets)} of {len(massive.text_onsets)} texts pass it)."
        )
    else:
        per_text = f"No text has a block past {rules.MASSIVE_ONSET_RATIO:g}."
    peak = "" if massive.peak is None else f" The highest ratio is {massive.peak:.0f}."
    return (
        f"**What this model shows** (the raw block output's largest |activation| over its median "
        f"|activation|, geometric mean over texts, log axis): {massive.reason}.{peak} {per_text}\n\n"
        f"**{massive.verdict.capitalize()}.**"
    )


def _dimension(found: Findings) -> str:
    dim = found.dimension
    peak = "" if dim.peak_layer is None else (
        f" The written text's curve peaks at block {dim.peak_layer} (relative depth {dim.peak_depth:.2f})."
    )  # fmt: skip
    return (
        f"**What this model shows** (TwoNN, Facco et al. 2017, on each text's raw token vectors; a text under "
        f"20 tokens has none): {dim.reason}.{peak}\n\n**{dim.verdict.capitalize()}.**"
    )
