"""Sun et al. 2024's intervention: at each chosen block, set the clean pass's massive activations
to their column's mean over the other tokens (or to zero), run the blocks after it, and measure
loss and KL against the clean run.

Each block is changed on its own: the blocks before it return their clean outputs
(sweep.run.tail_states), so one clean pass serves every block.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING

import numpy as np
import torch

from hsviewer.core.analyses.intervene.entries import massive_mask, positions, random_mask, set_entries
from hsviewer.core.analyses.intervene.layers import LayerChoice, choose_layers
from hsviewer.core.analyses.intervene.results import (
    InterventionCollector,
    InterventionResult,
    InterventionStarted,
    LayerIntervened,
    LayerIntervention,
)
from hsviewer.core.analyses.intervene.spec import InterveneSpec
from hsviewer.core.analyses.sweep.run import tail_states
from hsviewer.core.events import Finished, Progress, run_to_end
from hsviewer.core.linalg.measures import massive_activation
from hsviewer.core.model.anatomy import block_hidden
from hsviewer.core.passes.clean import CleanReference, ForwardPass, LogitMetrics, clean_forward, first_row
from hsviewer.core.passes.text import tokenize

if TYPE_CHECKING:
    from hsviewer.core.model.loading import ModelHandle

__all__ = ["InterventionResult", "LayerIntervention", "intervene", "iter_intervene"]

InterventionEvent = Progress | InterventionStarted | LayerIntervened | Finished[InterventionResult]


def iter_intervene(handle: ModelHandle, text: str, spec: InterveneSpec) -> Generator[InterventionEvent, None, None]:
    """Intervene at each chosen block in turn (spec.layers: a block, a list, or "all"), yielding a
    Progress event for the clean pass, InterventionStarted, a LayerIntervened per block, then
    Finished. Stop iterating to cancel: InterventionCollector keeps the blocks done.

    control="random": also set as many entries, drawn at random (seeded) from the others, the
    same way, so the massive ones' damage can be told from that of changing any entries at all.
    """
    ratio, value, control, seed = spec.ratio, spec.value, spec.control, spec.seed
    chosen = choose_layers(spec.layers, handle.n_layers)
    tokens = tokenize(handle, text)
    handle.check_memory(len(tokens))
    total = len(chosen)
    yield Progress(message=f"Clean pass over {len(tokens)} tokens…", done=0, total=total)
    clean = clean_forward(handle, tokens.ids, raw=True)
    reference = yield from CleanReference.build(handle, clean.states, tokens.ids, done=0, total=total)
    run = InterventionResult(
        model=handle.name,
        tokens=tokens.strings,
        n_layers=handle.n_layers,
        ratio=float(ratio),
        value=value,
        clean_loss=reference.loss,
        control=control,
        seed=seed,
        warnings=tokens.warnings,
    )
    collector = InterventionCollector()
    started = InterventionStarted(run=run, layers=chosen)
    collector.add(started)
    yield started
    for done, layer in enumerate(chosen, start=1):
        yield Progress(message=f"Intervention at layer {layer}", done=done - 1, total=total)
        event = LayerIntervened(done=done, total=total, result=_layer(handle, tokens.ids, clean, reference, layer, run))
        collector.add(event)
        yield event
    assert collector.result is not None
    yield Finished(result=collector.result)


def intervene(
    handle: ModelHandle,
    text: str,
    layers: LayerChoice,
    *,
    ratio: float = 100.0,
    value: str = "mean",
    control: str | None = None,
    seed: int = 0,
) -> InterventionResult:
    """iter_intervene to its end."""
    spec = InterveneSpec(layers=layers, ratio=ratio, value=value, control=control, seed=seed)
    events = iter_intervene(handle, text, spec)
    result: InterventionResult = run_to_end(events)
    return result


def _layer(
    handle: ModelHandle,
    ids: torch.Tensor,
    clean: ForwardPass,
    reference: CleanReference,
    layer: int,
    run: InterventionResult,
) -> LayerIntervention:
    """One block: its massive entries set, the rest of the model run; no pass when none is massive."""
    hs = first_row(block_hidden(clean.hidden[layer]))
    original = hs.detach().to("cpu").double().numpy()
    mask, median = massive_mask(original, run.ratio)
    changed = set_entries(original, mask, run.value)
    metrics = _run(handle, ids, clean, reference, layer, hs, changed.hidden) if mask.any() else _unchanged(reference)
    result = LayerIntervention(
        layer=layer,
        entries=int(mask.sum()),
        positions=positions(mask),
        median=median,
        largest_ratio=_finite(massive_activation(original).ratio),
        loss=metrics.loss,
        loss_change=metrics.loss - run.clean_loss,
        kl_divergence=metrics.kl_divergence,
        hidden_diff_norm=float(np.linalg.norm(changed.hidden - original)),
        logit_diff_norm=metrics.logit_diff_norm,
        notes=[_lonely_note(changed.lonely)] if changed.lonely else [],
    )
    if run.control == "random":
        drawn = set_entries(original, random_mask(mask, run.seed, layer), run.value)
        control = _run(handle, ids, clean, reference, layer, hs, drawn.hidden) if mask.any() else _unchanged(reference)
        result.random_loss, result.random_kl = control.loss, control.kl_divergence
    return result


def _run(
    handle: ModelHandle,
    ids: torch.Tensor,
    clean: ForwardPass,
    reference: CleanReference,
    layer: int,
    hs: torch.Tensor,
    changed: np.ndarray,
) -> LogitMetrics:
    """The blocks after `layer` run from the changed hidden state, compared with the clean run."""
    hidden = torch.as_tensor(changed, dtype=hs.dtype, device=hs.device)
    return reference.compare(tail_states(handle, ids, clean, layer, hidden))


def _finite(ratio: float) -> float | None:
    """The ratio as JSON holds it: None for infinity (a median of 0)."""
    return ratio if math.isfinite(ratio) else None


def _unchanged(reference: CleanReference) -> LogitMetrics:
    """What a pass with nothing changed gives, without running it."""
    return LogitMetrics(loss=reference.loss, kl_divergence=0.0, logit_diff_norm=0.0)


def _lonely_note(columns: list[int]) -> str:
    shown = ", ".join(map(str, columns[:10])) + ("…" if len(columns) > 10 else "")
    return f"every token was massive in dimension(s) {shown}: no other token has a mean there, so they were set to 0"
