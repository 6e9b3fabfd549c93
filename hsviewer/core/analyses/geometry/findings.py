"""What the aggregate says about each paper's curve, read by fixed rules from the numbers, so that the
page's claims of agreement follow the result and never a hope. Free of torch.

The rules, each a shape the paper reports (thresholds here, quoted on the page):
- anisotropy is bell-shaped: its peak is at mid-depth (relative depth MID), the blocks within
  NEAR_PEAK of it span at most PLATEAU_WIDTH of the depth (a peak, not a plateau), and both ends are
  at most BELL_END x the peak;
- the massive-activation ratio rises early, plateaus and falls: its geometric mean first passes
  MASSIVE_ONSET_RATIO by relative depth EARLY; over the middle blocks (relative depth MIDDLE) it stays
  within PLATEAU_SPREAD x of itself; at the last block it is at most FALL x the plateau;
- shuffling raises TwoNN: the shuffled mean over blocks is above the plain one, and the shuffled
  curve is above the plain at MOST of the blocks that have both.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from hsviewer.core.analyses.geometry.results import DIFFERENCE, GeometryResult, LayerAggregate, TextGeometry
from hsviewer.core.linalg.measures import MASSIVE_ONSET_RATIO, massive_onset

BELL_END = 0.8
MID = (0.2, 0.8)
NEAR_PEAK = 0.95  # the blocks this close to the peak: a bell has a few, a plateau many
PLATEAU_WIDTH = 1 / 3  # of relative depth; a bell as wide as the depth is within 5% of its top over ~0.13
EARLY = 1 / 3
MIDDLE = (0.25, 0.75)
PLATEAU_SPREAD = 3.0
FALL = 0.5
MOST = 2 / 3

AGREES, PARTLY, DISAGREES, UNKNOWN = "agrees", "partly agrees", "does not agree", "cannot say"


@dataclass(frozen=True, kw_only=True)
class Peak:
    """Where one anisotropy curve peaks, and its two ends."""

    layer: int
    depth: float
    value: float
    first: float
    last: float
    verdict: str
    reason: str


def anisotropy_peak(layers: list[LayerAggregate], name: str) -> Peak | None:
    """The peak of the mean curve of `name`, and whether it is bell-shaped; None with no values."""
    points = [(a, a.mean(name)) for a in layers]
    present = [(a, v) for a, v in points if v is not None]
    if not present:
        return None
    top, value = max(present, key=lambda p: p[1])
    first, last = present[0][1], present[-1][1]
    near = [a for a, v in present if v >= NEAR_PEAK * value]
    where = f"peak {value:.3f} at block {top.layer} (relative depth {top.depth:.2f})"
    if len(near) > 1:
        where += (
            f", within {1 - NEAR_PEAK:.0%} of it from block {near[0].layer} to {near[-1].layer} "
            f"(relative depth {near[0].depth:.2f} to {near[-1].depth:.2f}, {len(near)} blocks)"
        )
    ends = f"first block {first:.3f}, last {last:.3f}"
    if top is present[0][0] or top is present[-1][0]:
        end = "first" if top is present[0][0] else "last"
        verdict, reason = DISAGREES, f"{where}: the peak is the {end} block, no bell"
    elif not MID[0] <= top.depth <= MID[1]:
        verdict, reason = PARTLY, f"{where}: interior but not mid-depth ({MID[0]:g}-{MID[1]:g}); {ends}"
    elif near[-1].depth - near[0].depth > PLATEAU_WIDTH:
        verdict, reason = PARTLY, f"{where}: a plateau wider than {PLATEAU_WIDTH:.2f} of the depth, no bell; {ends}"
    elif first > BELL_END * value or last > BELL_END * value:
        high = "first" if first > BELL_END * value else "last"
        verdict, reason = PARTLY, f"{where}, mid-depth, but the {high} block is above {BELL_END:g}x the peak; {ends}"
    else:
        verdict, reason = AGREES, f"{where}, mid-depth; {ends}: it rises and falls"
    return Peak(layer=top.layer, depth=top.depth, value=value, first=first, last=last, verdict=verdict, reason=reason)


@dataclass(frozen=True, kw_only=True)
class Massive:
    onset_layer: int | None  # the first block whose geometric-mean ratio passes MASSIVE_ONSET_RATIO
    onset_depth: float | None
    text_onsets: list[int | None]  # each text's own onset (measures.massive_onset)
    plateau: float | None  # the median of the middle blocks' geometric means
    spread: float | None  # max / min over those blocks
    last: float | None
    peak: float | None
    verdict: str
    reason: str


def massive_shape(layers: list[LayerAggregate], result: GeometryResult) -> Massive:
    """Onset, plateau and fall of the geometric-mean ratio curve."""
    points = [(a, a.mean("massive_ratio")) for a in layers]
    present = [(a, v) for a, v in points if v is not None]
    text_onsets = [text_onset(text) for text in result.texts]
    middle = [v for a, v in present if MIDDLE[0] <= a.depth <= MIDDLE[1]]
    if not present or not middle:
        reason = "no block has a ratio" if not present else "no block lies in the middle"
        return Massive(
            onset_layer=None, onset_depth=None, text_onsets=text_onsets, plateau=None, spread=None,
            last=None, peak=None, verdict=UNKNOWN, reason=reason,
        )  # fmt: skip
    onset = next((a for a, v in present if v > MASSIVE_ONSET_RATIO), None)
    plateau, spread, last = statistics.median(middle), max(middle) / min(middle), present[-1][1]
    parts = [
        _onset_part(onset, present),
        (spread <= PLATEAU_SPREAD, f"over relative depth {MIDDLE[0]:g}-{MIDDLE[1]:g} the ratio stays within "
         f"{spread:.3g}x (median {plateau:.0f})" + ("" if spread <= PLATEAU_SPREAD else ": no plateau")),
        (last <= FALL * plateau, f"the last block's {last:.0f} is {last / plateau:.2f}x the plateau"
         + (": it falls" if last <= FALL * plateau else ": no fall")),
    ]  # fmt: skip
    return Massive(
        onset_layer=None if onset is None else onset.layer,
        onset_depth=None if onset is None else onset.depth,
        text_onsets=text_onsets,
        plateau=plateau,
        spread=spread,
        last=last,
        peak=max(v for _, v in present),
        verdict=_count_verdict([ok for ok, _ in parts]),
        reason="; ".join(text for _, text in parts) + _steepest(present),
    )


def _steepest(present: list[tuple[LayerAggregate, float]]) -> str:
    """Where the curve jumps most from one block to the next: an abrupt appearance shows as one big factor."""
    steps = [(b[1] / a[1], a[0], b[0]) for a, b in itertools.pairwise(present) if a[1] > 0]
    if not steps:
        return ""
    factor, before, after = max(steps, key=lambda step: step[0])
    return f"; the steepest rise is {factor:.3g}x, from block {before.layer} to block {after.layer}"


def _onset_part(onset: LayerAggregate | None, present: list[tuple[LayerAggregate, float]]) -> tuple[bool, str]:
    if onset is None:
        return False, f"the ratio never passes {MASSIVE_ONSET_RATIO:g}: no onset"
    early = onset.depth <= EARLY
    when = "early" if early else f"late (after relative depth {EARLY:.2f})"
    text = f"it passes {MASSIVE_ONSET_RATIO:g} at block {onset.layer} (relative depth {onset.depth:.2f}), {when}"
    under = [str(a.layer) for a, v in present if a.layer > onset.layer and v <= MASSIVE_ONSET_RATIO]
    if under:
        text += f", and is back under it at block{'s' * (len(under) > 1)} {', '.join(under)}"
    return early, text


def text_onset(text: TextGeometry) -> int | None:
    """One text's first block past MASSIVE_ONSET_RATIO, as a sweep's massive_activation_onset reads it."""
    ratios = [(layer.layer, layer.massive_ratio) for layer in text.layers if layer.massive_ratio is not None]
    layer: int | None = massive_onset(ratios)["layer"]
    return layer


@dataclass(frozen=True, kw_only=True)
class Dimension:
    plain: float | None  # the mean over blocks of the plain curve (blocks that have both)
    shuffled: float | None
    above: int  # blocks where the shuffled mean is above the plain one
    significant: int  # blocks whose paired 95% interval of shuffled - plain lies above zero
    blocks: int  # blocks with both curves
    peak_layer: int | None  # where the plain curve peaks
    peak_depth: float | None
    verdict: str
    reason: str


def dimension_shift(layers: list[LayerAggregate]) -> Dimension:
    """Shuffled against plain TwoNN, block by block."""
    pairs = [
        (a, p, s)
        for a in layers
        if (p := a.mean("twonn_dimension")) is not None and (s := a.mean("twonn_dimension_shuffled")) is not None
    ]
    if not pairs:
        reason = "no block has a TwoNN dimension (every text under 20 tokens)"
        return Dimension(
            plain=None, shuffled=None, above=0, significant=0, blocks=0, peak_layer=None, peak_depth=None,
            verdict=UNKNOWN, reason=reason,
        )  # fmt: skip
    plain = statistics.fmean(p for _, p, _ in pairs)
    mixed = statistics.fmean(s for _, _, s in pairs)
    above = sum(s > p for _, p, s in pairs)
    significant = sum(1 for a, _, _ in pairs if (ci := a.values[DIFFERENCE].ci95) is not None and ci[0] > 0)
    top = max(pairs, key=lambda x: x[1])[0]
    ok = mixed > plain and above >= MOST * len(pairs)
    reason = (
        f"mean over blocks {plain:.1f} as written, {mixed:.1f} shuffled; shuffled above at {above} of "
        f"{len(pairs)} blocks ({significant} with the paired 95% interval above zero)"
    )
    verdict = AGREES if ok else (PARTLY if mixed > plain or above > len(pairs) / 2 else DISAGREES)
    return Dimension(
        plain=plain, shuffled=mixed, above=above, significant=significant, blocks=len(pairs),
        peak_layer=top.layer, peak_depth=top.depth, verdict=verdict, reason=reason,
    )  # fmt: skip


def _count_verdict(parts: list[bool]) -> str:
    return AGREES if all(parts) else (PARTLY if any(parts) else DISAGREES)


@dataclass(frozen=True, kw_only=True)
class Findings:
    anisotropy: Peak | None
    anisotropy_without_first: Peak | None
    massive: Massive
    dimension: Dimension

    @classmethod
    def of(cls, result: GeometryResult) -> Findings:
        layers = result.aggregate()
        return cls(
            anisotropy=anisotropy_peak(layers, "anisotropy"),
            anisotropy_without_first=anisotropy_peak(layers, "anisotropy_without_first"),
            massive=massive_shape(layers, result),
            dimension=dimension_shift(layers),
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rules"] = {
            "bell_end": BELL_END, "mid": list(MID), "near_peak": NEAR_PEAK, "plateau_width": PLATEAU_WIDTH,
            "early": EARLY, "middle": list(MIDDLE), "plateau_spread": PLATEAU_SPREAD, "fall": FALL, "most": MOST,
            "onset_ratio": MASSIVE_ONSET_RATIO,
        }  # fmt: skip
        return out


def document(result: GeometryResult) -> dict[str, Any]:
    """The reproduction's JSON: its result, with the findings read from it."""
    return {**result.to_dict(), "findings": Findings.of(result).to_dict()}
