"""Forward passes shared by the analyses: a clean run and its comparison with a changed one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hsviewer.core.hooks import capture_outputs


@dataclass
class Run:
    """What one forward pass gives: every block's hidden state, the logits and the loss."""

    hidden: dict[int, Any]  # block index -> (T, D) tensor; raw outputs when raw=True
    logits: Any  # (T, V)
    loss: float


def forward(handle: Any, ids: Any, raw: bool = False) -> Run:
    """One pass with labels = tokens, recording each block's output."""
    import torch

    with torch.no_grad(), capture_outputs(handle.blocks, raw=raw) as outputs:
        out = handle.model(ids, labels=ids, use_cache=False)
    return Run(outputs, out.logits[0].float(), float(out.loss))


def row(hidden: Any) -> Any:
    """Batch row 0 of a captured hidden state, as float32 (T, D)."""
    return hidden[0].float()


def log_probs(logits: Any) -> Any:
    """Next-token log-probabilities, computed once per run and reused for every KL."""
    import torch

    return torch.log_softmax(logits.float(), -1)


def kl_divergence(clean_log_probs: Any, logits: Any) -> float:
    """KL(clean || reduced) of the next-token distributions, mean over tokens (nats)."""
    p = clean_log_probs
    return float((p.exp() * (p - log_probs(logits))).sum(-1).mean())
