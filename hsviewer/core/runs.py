"""Forward passes shared by the analyses: a clean run, and how far a changed run's logits moved.

Loss and KL both come from one log-softmax over the vocabulary: the LM head's output is
the largest tensor of a pass, and a sweep measures it once per layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

import torch

from hsviewer.core.blocks import BlockOutput
from hsviewer.core.hooks import capture_outputs

if TYPE_CHECKING:
    from hsviewer.core.models import ModelHandle

# What a run recorded per block: the hidden state, or the raw block output (raw=True).
Recorded = TypeVar("Recorded", bound=BlockOutput)


@dataclass
class LogitMetrics:
    loss: float  # next-token cross-entropy with labels = tokens, as transformers computes it
    kl_divergence: float  # KL(clean || this run), mean over tokens, in nats
    logit_diff_norm: float  # Frobenius norm of (logits - clean logits)


class CleanReference:
    """The clean run's logits, with what every comparison against them reuses."""

    def __init__(self, logits: torch.Tensor, ids: torch.Tensor) -> None:
        self.logits = logits
        self.ids = ids[0]
        log_p = torch.log_softmax(logits, -1)
        self.probs = log_p.exp()
        self.neg_entropy = _rowdot(self.probs, log_p)  # sum_v p log p, per token
        self.loss = next_token_loss(log_p, self.ids)
        # Reused for every comparison: a fresh vocabulary-sized tensor per layer costs more
        # in page faults than the arithmetic done in it.
        self._log_q = torch.empty_like(logits)
        self._diff = torch.empty_like(logits)

    def loss_of(self, logits: torch.Tensor) -> float:
        return next_token_loss(torch.log_softmax(logits, -1), self.ids)

    def compare(self, logits: torch.Tensor) -> LogitMetrics:
        log_q = torch.log_softmax(logits, -1, out=self._log_q)
        kl = self.neg_entropy - _rowdot(self.probs, log_q)  # sum_v p (log p - log q), per token
        diff = torch.sub(logits, self.logits, out=self._diff)
        return LogitMetrics(next_token_loss(log_q, self.ids), float(kl.mean()), float(torch.linalg.norm(diff)))


def next_token_loss(log_q: torch.Tensor, ids: torch.Tensor) -> float:
    """Mean of -log q(token t+1 | tokens up to t)."""
    return -float(log_q[:-1].gather(-1, ids[1:, None]).mean())


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row dot products without a vocabulary-sized temporary."""
    return (a[:, None, :] @ b[:, :, None])[:, 0, 0]


@dataclass
class Run(Generic[Recorded]):
    """What one forward pass gives: every block's hidden state and the logits."""

    hidden: dict[int, Recorded]  # block index -> (1, T, D) tensor; raw block outputs when raw=True
    logits: torch.Tensor  # (T, V), float32


@overload
def clean_forward(handle: ModelHandle, ids: torch.Tensor, raw: Literal[False] = False) -> Run[torch.Tensor]: ...
@overload
def clean_forward(handle: ModelHandle, ids: torch.Tensor, raw: bool) -> Run[BlockOutput]: ...
def clean_forward(handle: ModelHandle, ids: torch.Tensor, raw: bool = False) -> Run[Any]:
    """One pass with no changes, recording each block's output."""
    with torch.no_grad(), capture_outputs(handle.blocks, raw=raw) as outputs:
        out = handle.model(ids, use_cache=False)
    return Run(outputs, out.logits[0].float())


def logits_of(handle: ModelHandle, ids: torch.Tensor) -> torch.Tensor:
    """The (T, V) float32 logits of a pass whose changes hooks or stubs install."""
    with torch.no_grad():
        return handle.model(ids, use_cache=False).logits[0].float()


def first_row(hidden: torch.Tensor) -> torch.Tensor:
    """Batch row 0 of a captured hidden state, as float32 (T, D)."""
    return hidden[0].float()
