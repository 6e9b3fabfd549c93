"""Forward passes shared by the analyses: a clean run, and how far a changed run's logits moved.

The LM head's output is the largest tensor of a pass (tokens x vocabulary), and a sweep
measures it once per layer. So a pass keeps the head's input, and the metrics apply the
head a chunk of tokens at a time.

The chunks stay float32, and loss and KL are summed in float64 from them. With
lse = logsumexp(logits) per token, in float64:
    loss_t = lse_q - z_q[next token]
    KL_t = sum_v p_v (z_p - z_q)_v - (lse_p - lse_q)
Neither needs a log-probability tensor; the difference of the logits, which the logit
norm needs anyway, rounds relative to itself, so a small KL stays accurate. The float32
ways lose: a matmul's row-dot and torch.log_softmax's CPU kernel sum a vocabulary in
order, and put the KL 1e-5 to 1e-4 (relative) below its float64 value.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, TypeVar, overload

import torch

from hsviewer.core.events import Progress
from hsviewer.core.model.anatomy import BlockOutput, head_input, head_logits
from hsviewer.core.model.finite import check_finite
from hsviewer.core.passes.hooks import capture_outputs

if TYPE_CHECKING:
    from hsviewer.core.model.loading import ModelHandle

# What a run recorded per block: the hidden state, or the raw block output (raw=True).
Recorded = TypeVar("Recorded", bound=BlockOutput)


CHUNK_BYTES = 32 * 2**20  # one chunk of tokens x vocabulary logits, in float32
ROWS_BYTES = 4 * 2**20  # the float64 logsumexp takes a few tokens' logits at a time, up to this size
CACHE_BYTES = 256 * 2**20  # the clean run's logits and probabilities are kept whole up to this size


@dataclass
class LogitMetrics:
    loss: float  # next-token cross-entropy with labels = tokens, as transformers computes it
    kl_divergence: float  # KL(clean || this run), mean over tokens, in nats
    logit_diff_norm: float  # Frobenius norm of (logits - clean logits)


class _CleanChunk(NamedTuple):
    logits: torch.Tensor  # (C, V)
    probs: torch.Tensor  # (C, V)
    lse: torch.Tensor  # (C,) float64: logsumexp of each token's logits


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
        self._probs = torch.empty(min(step, n), vocab)
        self._work = torch.empty(min(step, n), vocab)
        keep = 2 * 4 * n * vocab <= CACHE_BYTES
        self._kept: list[_CleanChunk] | None = [] if keep else None
        nll = 0.0
        for sl in self.slices:
            yield Progress(message=f"Clean logits: tokens {sl.start + 1} to {sl.stop} of {n}", done=done, total=total)
            logits = head_logits(self.head, states[sl])  # once per chunk: the loss and the kept chunk share it
            lse = logsumexp64(logits)
            nll += _nll_sum(logits, lse, self.ids, sl)
            if self._kept is not None:
                self._kept.append(_CleanChunk(logits, _probs(logits, torch.empty_like(logits)), lse))
        self.loss = nll / (n - 1)

    def loss_of(self, states: torch.Tensor) -> float:
        return sum(self._nll(states, sl) for sl in self.slices) / (len(self.ids) - 1)

    def _nll(self, states: torch.Tensor, sl: slice) -> float:
        logits = head_logits(self.head, states[sl])
        return _nll_sum(logits, logsumexp64(logits), self.ids, sl)

    def compare(self, states: torch.Tensor) -> LogitMetrics:
        kl = loss = squares = 0.0
        for index, sl in enumerate(self.slices):
            clean = self._kept[index] if self._kept is not None else self._clean(sl)
            logits = head_logits(self.head, states[sl])
            lse = logsumexp64(logits)
            loss += _nll_sum(logits, lse, self.ids, sl)
            diff = torch.sub(clean.logits, logits, out=self._work[: len(logits)])
            squares += float(torch.linalg.norm(diff)) ** 2
            cross = diff.mul_(clean.probs).sum(-1).double()  # sum_v p (z_p - z_q): a pairwise float32 sum
            kl += float((cross - (clean.lse - lse)).sum())
        n = len(self.ids)
        # KL is never negative; float32 rounding can end a hair below zero
        return LogitMetrics(loss / (n - 1), max(kl / n, 0.0), squares**0.5)

    def _clean(self, sl: slice) -> _CleanChunk:
        """The clean logits of the tokens in sl, their probabilities in the reused buffer."""
        logits = head_logits(self.head, self.states[sl])
        lse = logsumexp64(logits)
        return _CleanChunk(logits, _probs(logits, self._probs[: len(logits)]), lse)


def logsumexp64(logits: torch.Tensor) -> torch.Tensor:
    """(C,) float64 logsumexp of each row of float32 (C, V) logits, a few rows at a time in float64.

    Float32 would do for the probabilities, not for the loss and KL: an error in it shifts
    every log-probability of the token alike, and a KL of 1e-2 nats per token then moves by 1e-5."""
    rows = max(1, ROWS_BYTES // (8 * logits.shape[-1]))
    return torch.cat([torch.logsumexp(logits[i : i + rows].double(), -1) for i in range(0, len(logits), rows)])


def _probs(logits: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """softmax(logits) into out, in float32, each row summing to 1 to float32 rounding: the KL's
    cross term is these weights' mean of the logits' change, and a change the same at every
    token of the vocabulary changes no probability."""
    out = torch.sub(logits, logits.amax(-1, keepdim=True), out=out).exp_()
    return out.div_(out.sum(-1, keepdim=True))


def _nll_sum(logits: torch.Tensor, lse: torch.Tensor, ids: torch.Tensor, sl: slice) -> float:
    """Sum of -log q(token t+1 | tokens up to t) over the tokens t of sl that have a next token, in float64."""
    targets = ids[sl.start + 1 : sl.stop + 1]
    return float((lse[: len(targets)] - logits[: len(targets)].gather(-1, targets[:, None])[:, 0].double()).sum())


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
