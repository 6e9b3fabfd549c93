"""Parts 2 and 3 of the notebook: reduce one layer's hidden state, then inside the forward pass."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import numpy as np
import torch

from hsviewer.core.analyses.reduce.results import HiddenReduction
from hsviewer.core.analyses.reduce.spec import ReduceSpec
from hsviewer.core.errors import HsviewerError
from hsviewer.core.events import Finished, Progress, run_to_end
from hsviewer.core.linalg import lowrank
from hsviewer.core.linalg.measures import measure
from hsviewer.core.linalg.reduction import Reduction, decompose
from hsviewer.core.passes.clean import CleanReference, clean_forward, first_row, pass_states
from hsviewer.core.passes.hooks import distances_from, replace_block_output
from hsviewer.core.passes.text import tokenize

if TYPE_CHECKING:
    from hsviewer.core.model.loading import ModelHandle


__all__ = ["HiddenReduction", "ReduceSpec", "check_layer", "iter_reduce", "reduce_layer"]

HiddenEvent = Progress | Finished[HiddenReduction]


def iter_reduce(handle: ModelHandle, text: str, spec: ReduceSpec) -> Generator[HiddenEvent, None, None]:
    """Reduce block spec.layer's output, then rerun with the reduction hooked in at that block.

    Yields a Progress event before each forward pass and ends with Finished(result).
    """
    reduction = spec.reduction
    layer = check_layer(spec.layer, handle.n_layers)
    tokens = tokenize(handle, text)
    handle.check_memory(len(tokens))
    yield Progress(message=f"Clean pass over {len(tokens)} tokens…", done=0, total=2)
    clean = clean_forward(handle, tokens.ids)
    reference = yield from CleanReference.build(handle, clean.states, tokens.ids, done=0, total=2)
    hs = first_row(clean.hidden[layer])
    dec = decompose(hs, reduction)
    k = dec.choose_components(reduction)
    reconstruction, kept = dec.reconstruct(k, reduction)
    yield Progress(message=f"Forward pass with layer {layer} reduced", done=1, total=2)
    # Blocks 0..layer run as in the clean pass, so the hook meets `hs` again: put in its reconstruction.
    with (
        replace_block_output(handle.blocks[layer], lambda hidden: reconstruction),
        distances_from(handle.blocks, clean.hidden) as distances,
    ):
        states = pass_states(handle, tokens.ids)[0]
    norms = [distances[i] for i in range(handle.n_layers)]
    metrics = reference.compare(states)
    original, reconstructed, s = _np(hs), _np(reconstruction), _np(dec.s)
    following = clean.hidden.get(layer + 1)  # the clean pass recorded every block: no pass of its own
    after = None if following is None else _np(first_row(following))
    result = HiddenReduction(
        model=handle.name,
        tokens=tokens.strings,
        layer=layer,
        n_layers=handle.n_layers,
        reduction=reduction,
        original=original,
        reconstruction=reconstructed,
        u=_np(dec.u),
        s=s,
        vh=_np(dec.vh),
        components=k,
        variance_kept=kept,
        diff_norms=np.array(norms),
        clean_loss=reference.loss,
        loss=metrics.loss,
        logit_diff_norm=metrics.logit_diff_norm,
        kl_divergence=metrics.kl_divergence,
        correlation=float(np.corrcoef(original.ravel(), reconstructed.ravel())[0, 1]),
        rank_original=int(np.linalg.matrix_rank(original)),  # an SVD each: here, on the caller's (worker) thread
        rank_reconstruction=int(np.linalg.matrix_rank(reconstructed)),
        measures=measure(s, original, tokens.strings, after),
        warnings=tokens.warnings,
    )
    yield Finished(result=result)


def reduce_layer(handle: ModelHandle, text: str, layer: int, reduction: Reduction | None = None) -> HiddenReduction:
    """iter_reduce to its end, with the spec the layer and reduction make."""
    spec = ReduceSpec(layer=layer, reduction=reduction or Reduction())
    result: HiddenReduction = run_to_end(iter_reduce(handle, text, spec))
    return result


def check_layer(layer: object, n_layers: int) -> int:
    if not lowrank.is_whole(layer) or not 0 <= layer < n_layers:
        raise HsviewerError(f"Layer must be a whole number from 0 to {n_layers - 1}; got {layer!r}.")
    return int(layer)


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu").float().numpy()
