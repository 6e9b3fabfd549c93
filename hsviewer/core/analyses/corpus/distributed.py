"""A corpus sweep across processes, with torch.distributed as the engine.

torchrun (or srun) starts the same command N times and says in the environment which
process each is (RANK and WORLD_SIZE, or srun's SLURM_PROCID and SLURM_NTASKS) and where
they meet (MASTER_ADDR, MASTER_PORT). Each process sweeps one contiguous share of the
texts; rank 0 gathers the shares in rank order, which puts the texts back in the corpus's
order, and alone has the result: the same texts, notes and numbers as one process's.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from hsviewer.core.analyses.corpus.results import CorpusCollector, CorpusEvent, CorpusResult
from hsviewer.core.errors import HsviewerError

if TYPE_CHECKING:
    from hsviewer.core.analyses.corpus.texts import CorpusText
    from hsviewer.core.analyses.sweep.spec import SweepSpec
    from hsviewer.core.model.loading import ModelHandle

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes of one run."""

    rank: int
    world_size: int
    local_rank: int  # among the processes on this machine: its GPU

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> range:
        """This rank's contiguous part of n items; rank 0's is never empty when n > 0."""
        size = math.ceil(n / self.world_size)
        return range(min(self.rank * size, n), min((self.rank + 1) * size, n))

    def device(self, asked: str | None) -> str | None:
        """The device this rank computes on: with CUDA asked for (or left to the default) and
        present, the local rank's GPU, so that the ranks on one machine share its GPUs."""
        import torch

        if asked not in (None, "cuda") or not torch.cuda.is_available():
            return asked
        return f"cuda:{self.local_rank % torch.cuda.device_count()}"


def launched_ranks(environ: Mapping[str, str] = os.environ) -> Ranks | None:
    """The ranks a launcher set in the environment; None for a process started alone (or one of one)."""
    world = environ.get("WORLD_SIZE", environ.get("SLURM_NTASKS"))
    rank = environ.get("RANK", environ.get("SLURM_PROCID"))
    if world is None or rank is None:
        return None
    local = environ.get("LOCAL_RANK", environ.get("SLURM_LOCALID", rank))
    try:
        ranks = Ranks(rank=int(rank), world_size=int(world), local_rank=int(local))
    except ValueError:
        raise HsviewerError(f"The launcher's RANK {rank!r} and WORLD_SIZE {world!r} are no whole numbers.") from None
    if ranks.world_size < 2:
        return None
    if not 0 <= ranks.rank < ranks.world_size:
        raise HsviewerError(f"RANK {ranks.rank} is not one of the {ranks.world_size} processes (0 to WORLD_SIZE - 1).")
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not environ.get(name)]
    if missing:
        raise HsviewerError(
            f"{' and '.join(missing)} not set: the {ranks.world_size} processes need to know where to meet "
            "(torchrun sets them; under srun, export them)."
        )
    return ranks


@contextmanager
def process_group(ranks: Ranks, device: str) -> Iterator[None]:
    """Join the run's process group from the environment (nccl between GPUs, gloo on CPUs), and leave it after."""
    import torch
    import torch.distributed as dist

    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(
        "nccl" if cuda else "gloo", init_method="env://", rank=ranks.rank, world_size=ranks.world_size
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


@dataclass(frozen=True)
class _Outcome(Generic[T]):
    value: T | None
    error: str | None


def gathered(ranks: Ranks, work: Callable[[], T]) -> list[T] | None:
    """work() on every rank, gathered to rank 0 in rank order; None on the other ranks.

    Every rank reaches the gather even when its work fails, so that none waits for it
    forever: the failure is raised on its own rank, and on rank 0 as an HsviewerError
    naming the rank."""
    import torch.distributed as dist

    try:
        outcome: _Outcome[T] = _Outcome(work(), None)
        failure: BaseException | None = None
    except Exception as e:
        outcome, failure = _Outcome(None, str(e) or type(e).__name__), e
    outcomes: list[Any] | None = [None] * ranks.world_size if ranks.leader else None
    dist.gather_object(outcome, outcomes, dst=0)
    if failure is not None:
        raise failure
    if outcomes is None:
        return None
    for rank, other in enumerate(outcomes):
        if other.error is not None:
            raise HsviewerError(f"Process {rank} of {ranks.world_size} failed: {other.error}")
    return [other.value for other in outcomes]


def sweep_share(
    events: Callable[[Sequence[CorpusText]], Iterator[CorpusEvent]],
    texts: Sequence[CorpusText],
    on_event: Callable[[CorpusEvent], None] | None = None,
) -> CorpusResult | None:
    """One rank's texts swept by events(texts) (iter_corpus_sweep with the run's settings):
    their results and skip notes, in order; None for an empty share. A share whose every
    text is skipped is a result with notes only: the whole corpus may still have texts."""
    if not texts:
        return None
    collector = CorpusCollector()
    try:
        for event in events(texts):
            collector.add(event)
            if on_event is not None:
                on_event(event)
    except HsviewerError:
        if collector.result is None or collector.result.texts:
            raise
    return collector.result


def merge_shares(shares: Sequence[CorpusResult | None], notes: Sequence[str], world_size: int) -> CorpusResult:
    """The shares, in rank order, as one result: what one process sweeping the whole corpus
    makes, with world_size recorded. notes: what reading the corpus left out, first."""
    present = [share for share in shares if share is not None]
    skipped = [note for share in present for note in share.notes]
    if not any(share.texts for share in present):
        raise HsviewerError(f"No text of the corpus could be swept ({len(skipped)} skipped): {skipped[0]}")
    return replace(
        present[0],
        names=[name for share in present for name in share.names],
        texts=[text for share in present for text in share.texts],
        notes=[*notes, *skipped],
        world_size=world_size,
    )


def corpus_across_processes(
    ranks: Ranks,
    load: Callable[[], ModelHandle],
    texts: Sequence[CorpusText],
    spec: SweepSpec,
    *,
    source: str,
    notes: Sequence[str],
    on_event: Callable[[CorpusEvent], None] | None = None,
) -> tuple[ModelHandle, CorpusResult | None]:
    """Load the model and sweep this rank's share of the texts; on rank 0 the whole corpus's
    result (None on the others). Call it inside process_group."""
    from hsviewer.core.analyses.corpus.run import iter_corpus_sweep

    handle: ModelHandle | None = None

    def work() -> CorpusResult | None:
        nonlocal handle
        handle = load()
        mine = [texts[i] for i in ranks.share(len(texts))]
        return sweep_share(
            lambda share: iter_corpus_sweep(handle, share, spec, source=source),
            mine,
            on_event,
        )

    shares = gathered(ranks, work)
    assert handle is not None  # work raised otherwise
    return handle, None if shares is None else merge_shares(shares, notes, ranks.world_size)
