"""Parts 2 and 3 of the notebook: reduce one layer's hidden state, then inside the forward pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hsviewer.core import lowrank
from hsviewer.core.errors import HsviewerError
from hsviewer.core.hooks import capture_outputs, reduce_at
from hsviewer.core.reduction import Reduction, decompose
from hsviewer.core.runs import Reference, forward, row
from hsviewer.core.text import tokenize


@dataclass
class HiddenReduction:
    """One layer's hidden state, its reduction, and what the reduction does downstream."""

    model: str
    tokens: list[str]
    layer: int
    n_layers: int
    reduction: Reduction
    original: np.ndarray  # tokens x dims
    reconstruction: np.ndarray
    u: np.ndarray
    s: np.ndarray
    vh: np.ndarray
    components: int
    variance_kept: float
    diff_norms: np.ndarray  # per block, with the reduction applied at `layer`
    clean_loss: float
    loss: float
    logit_diff_norm: float
    kl_divergence: float
    correlation: float  # of original and reconstruction values
    rank_original: int
    rank_reconstruction: int
    warnings: list[str] = field(default_factory=list)

    @property
    def difference(self) -> np.ndarray:
        return self.original - self.reconstruction

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "tokens": self.tokens,
            "layer": self.layer,
            "n_layers": self.n_layers,
            "centering": self.reduction.centering,
            "threshold": self.reduction.threshold,
            "components": self.components,
            "variance_kept": self.variance_kept,
            "singular_values": self.s.tolist(),
            "cumulative_percent": lowrank.cumulative_percent(self.s).tolist(),
            "correlation": self.correlation,
            "rank_original": self.rank_original,
            "rank_reconstruction": self.rank_reconstruction,
            "diff_norms": self.diff_norms.tolist(),
            "clean_loss": self.clean_loss,
            "loss": self.loss,
            "logit_diff_norm": self.logit_diff_norm,
            "kl_divergence": self.kl_divergence,
            "warnings": self.warnings,
        }


def reduce_layer(handle: Any, text: str, layer: int, reduction: Reduction | None = None) -> HiddenReduction:
    """Reduce block `layer`'s output, then rerun with the reduction hooked in at that block."""
    reduction = reduction or Reduction()
    layer = check_layer(layer, handle.n_layers)
    tokens = tokenize(handle, text)
    clean = forward(handle, tokens.ids)
    hs = row(clean.hidden[layer])
    dec = decompose(hs, reduction)
    k = dec.components(reduction)
    reconstruction, kept = dec.reconstruct(k, reduction)

    import torch

    # Blocks 0..layer run as in the clean pass, so the hook meets `hs` again: put in its reconstruction.
    with (
        torch.no_grad(),
        reduce_at(handle.blocks[layer], lambda hidden: reconstruction),
        capture_outputs(handle.blocks) as reduced,
    ):
        logits = handle.model(tokens.ids, use_cache=False).logits[0].float()
    norms = [float(torch.linalg.norm(row(reduced[i]) - row(clean.hidden[i]))) for i in range(handle.n_layers)]
    reference = Reference(clean.logits, tokens.ids)
    metrics = reference.compare(logits)
    original, reconstructed = _np(hs), _np(reconstruction)
    return HiddenReduction(
        handle.name,
        tokens.strings,
        layer,
        handle.n_layers,
        reduction,
        original,
        reconstructed,
        _np(dec.u),
        _np(dec.s),
        _np(dec.vh),
        k,
        kept,
        np.array(norms),
        reference.loss,
        metrics.loss,
        metrics.logit_diff_norm,
        metrics.kl_divergence,
        float(np.corrcoef(original.ravel(), reconstructed.ravel())[0, 1]),
        int(np.linalg.matrix_rank(original)),  # an SVD each: here, on the caller's (worker) thread
        int(np.linalg.matrix_rank(reconstructed)),
        tokens.warnings,
    )


def check_layer(layer: int, n_layers: int) -> int:
    if not lowrank.is_whole(layer) or not 0 <= layer < n_layers:
        raise HsviewerError(f"Layer must be a whole number from 0 to {n_layers - 1}; got {layer!r}.")
    return int(layer)


def _np(x: Any) -> np.ndarray:
    return x.detach().to("cpu").float().numpy()
