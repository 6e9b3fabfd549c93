"""Forward passes shared by the analyses: a clean run, and how far a changed run's logits moved.

The LM head's output is the largest tensor of a pass (tokens x vocabulary), and a sweep
measures it once per layer. So a pass keeps the head's input, and the metrics apply the
head a chunk of tokens at a time; loss and KL come from one log-softmax per chunk.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, TypeVar, overload

import torch

from hsviewer.core.events import Progress
from hsviewer.core.model.anatomy import head_input, head_logits
from hsviewer.core.model.finite import check_finite
from hsviewer.core.passes.blocks import BlockOutput
from hsviewer.core.passes.hooks import capture_outputs

if TYPE_CHECKING:
    from hsviewer.core.model.loading import ModelHandle

# What a run recorded per block: the hidden state, or the raw block output (raw=True).
Recorded = TypeVar("Recorded", bound=BlockOutput)


CHUNK_BYTES = 32 * 2**20  # one chunk of tokens x vocabulary logits, in float32
CACHE_BYTES = 256 * 2**20  # the clean run's logits and probabilities are kept whole up to this size


@dataclass
class LogitMetrics:
    loss: float  # next-token cross-entropy with labels = tokens, as transformers computes it
    kl_divergence: float  # KL(clean || this run), mean over tokens, in nats
    logit_diff_norm: float  # Frobenius norm of (logits - clean logits)


class _CleanChunk(NamedTuple):
    logits: torch.Tensor  # (C, V)
    probs: torch.Tensor  # (C, V)
    neg_entropy: torch.Tensor  # (C,): sum_v p log p per token


class CleanReference:
    """The clean run, and what every comparison against it reuses.

    Runs are compared by what their logits are computed from (pass_states): the logits
    themselves come from the LM head a chunk of tokens at a time, so no tokens x
    vocabulary tensor exists whole unless the clean one is small enough to keep.
    """

    def __init__(self, handle: ModelHandle, states: torch.Tensor, ids: torch.Tensor) -> None:
        for _ in self._prepare(handle, states, ids, 0, 0):
            pass

    @classmethod
    def build(
        cls, handle: ModelHandle, states: torch.Tensor, ids: torch.Tensor, *, done: int = 0, total: int = 0
    ) -> Generator[Progress, None, CleanReference]:
        """The reference, with a Progress event per chunk of clean logits (done and total are the
        caller's): at the full context these chunks are the long first step's last part."""
        reference = cls.__new__(cls)
        yield from reference._prepare(handle, states, ids, done, total)
        return reference

    def _prepare(
        self, handle: ModelHandle, states: torch.Tensor, ids: torch.Tensor, done: int, total: int
    ) -> Iterator[Progress]:
        self.head = handle.head
        self.states = states
        self.ids = ids[0]
        vocab = head_logits(self.head, states[:1]).shape[-1]
        n = len(self.ids)
        step = max(1, CHUNK_BYTES // (4 * vocab))
        self.slices = [slice(i, min(i + step, n)) for i in range(0, n, step)]
        # Reused for every comparison: a fresh vocabulary-sized tensor per chunk costs more
        # in page faults than the arithmetic done in it.
        self._log_q = torch.empty(min(step, n), vocab)
        self._work = torch.empty(min(step, n), vocab)
        keep = 2 * 4 * n * vocab <= CACHE_BYTES
        self._kept: list[_CleanChunk] | None = [] if keep else None
        nll = 0.0
        for sl in self.slices:
            yield Progress(message=f"Clean logits: tokens {sl.start + 1} to {sl.stop} of {n}", done=done, total=total)
            logits = head_logits(self.head, states[sl])  # once per chunk: the loss and the kept chunk share it
            log_p = torch.log_softmax(logits, -1)
            nll += _nll_sum(log_p, self.ids, sl)
            if self._kept is not None:
                self._kept.append(self._chunk(logits, log_p, fresh=True))
        self.loss = nll / (n - 1)

    def loss_of(self, states: torch.Tensor) -> float:
        return sum(self._nll(states, sl) for sl in self.slices) / (len(self.ids) - 1)

    def _nll(self, states: torch.Tensor, sl: slice) -> float:
        logits = head_logits(self.head, states[sl])
        return _nll_sum(torch.log_softmax(logits, -1, out=self._log_q[: len(logits)]), self.ids, sl)

    def compare(self, states: torch.Tensor) -> LogitMetrics:
        kl = loss = squares = 0.0
        for index, sl in enumerate(self.slices):
            clean = self._kept[index] if self._kept is not None else self._clean(sl)
            logits = head_logits(self.head, states[sl])
            log_q = torch.log_softmax(logits, -1, out=self._log_q[: len(logits)])
            kl += float((clean.neg_entropy - _rowdot(clean.probs, log_q)).sum())  # sum_v p (log p - log q)
            loss += _nll_sum(log_q, self.ids, sl)
            diff = torch.sub(logits, clean.logits, out=self._work[: len(logits)])  # the probs are used up
            squares += float(torch.linalg.norm(diff)) ** 2
        n = len(self.ids)
        # KL is never negative; a float32 sum over the vocabulary can end a hair below zero (-4e-7)
        return LogitMetrics(loss / (n - 1), max(kl / n, 0.0), squares**0.5)

    def _clean(self, sl: slice, fresh: bool = False) -> _CleanChunk:
        """The clean logits of the tokens in sl; their probabilities in a reused buffer unless fresh."""
        logits = head_logits(self.head, self.states[sl])
        return self._chunk(logits, torch.log_softmax(logits, -1), fresh)

    def _chunk(self, logits: torch.Tensor, log_p: torch.Tensor, fresh: bool) -> _CleanChunk:
        probs = log_p.exp() if fresh else torch.exp(log_p, out=self._work[: len(logits)])
        return _CleanChunk(logits, probs, _rowdot(probs, log_p))


def _nll_sum(log_q: torch.Tensor, ids: torch.Tensor, sl: slice) -> float:
    """Sum of -log q(token t+1 | tokens up to t) over the tokens t of sl that have a next token."""
    targets = ids[sl.start + 1 : sl.stop + 1]
    return -float(log_q[: len(targets)].gather(-1, targets[:, None]).sum())


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row dot products without a vocabulary-sized temporary."""
    return (a[:, None, :] @ b[:, :, None])[:, 0, 0]


def pass_states(handle: ModelHandle, ids: torch.Tensor) -> torch.Tensor:
    """(B, T, X): what each token's logits are computed from in a pass whose changes hooks or
    stubs install: the LM head's input, or the float32 logits when the model has no separable head."""
    with torch.no_grad():
        if handle.head is None:
            return handle.model(ids, use_cache=False).logits.float()
        with head_input(handle.head) as seen:
            handle.model(ids, use_cache=False)
    return seen[-1]


@dataclass
class ForwardPass(Generic[Recorded]):
    """What one forward pass gives: every block's hidden state and the logits."""

    hidden: dict[int, Recorded]  # block index -> (1, T, D) tensor; raw block outputs when raw=True
    states: torch.Tensor  # (T, X): what the logits are computed from (pass_states)


@overload
def clean_forward(handle: ModelHandle, ids: torch.Tensor, raw: Literal[False] = False) -> ForwardPass[torch.Tensor]: ...
@overload
def clean_forward(handle: ModelHandle, ids: torch.Tensor, raw: bool) -> ForwardPass[BlockOutput]: ...
def clean_forward(handle: ModelHandle, ids: torch.Tensor, raw: bool = False) -> ForwardPass[Any]:
    """One pass with no changes, recording each block's output."""
    with capture_outputs(handle.blocks, raw=raw) as outputs:
        states = pass_states(handle, ids)
    check_finite(handle, states, "in the clean pass of this text")
    return ForwardPass(outputs, states[0])


def first_row(hidden: torch.Tensor) -> torch.Tensor:
    """Batch row 0 of a captured hidden state, as float32 (T, D)."""
    return hidden[0].float()
