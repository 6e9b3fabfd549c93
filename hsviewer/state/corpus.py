"""The corpus sweep's state: the corpus sweep shown and those in flight; a cancel keeps the texts done."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from psygnal import Signal

from hsviewer.state.jobs import JobHandlers, JobLike

if TYPE_CHECKING:
    from hsviewer.core.analyses.corpus.results import CorpusCollector, CorpusResult


class CorpusState:
    """The last corpus sweep, finished or cancelled, and the collectors of those in flight."""

    started = Signal(object)  # a CorpusResult with no text yet: a corpus sweep began
    progressed = Signal(object)  # the CorpusResult after one more text done or skipped
    ended = Signal(object)  # the CorpusResult kept: finished, cancelled, or opened from the library

    def __init__(self) -> None:
        self.result: CorpusResult | None = None
        self.running: dict[CorpusCollector, JobLike] = {}

    @property
    def busy(self) -> bool:
        return bool(self.running)

    def track(self, job: JobLike) -> JobHandlers:
        """Follow a corpus sweep job: the handlers to submit it with."""
        from hsviewer.core.analyses.corpus.results import CorpusCollector

        collector = CorpusCollector()
        self.running[collector] = job
        return JobHandlers(
            on_event=functools.partial(self.event, collector),
            on_result=self.show,
            on_cancelled=functools.partial(self.cancelled, collector),
            on_finished=functools.partial(self.forget, collector),
        )

    def event(self, collector: CorpusCollector, event: Any) -> None:
        from hsviewer.core.analyses.corpus.results import CorpusStarted, TextDone, TextSkipped

        collector.add(event)
        if collector.result is None:
            return
        if isinstance(event, CorpusStarted):
            self.started.emit(collector.result)
        elif isinstance(event, (TextDone, TextSkipped)):
            self.progressed.emit(collector.result)

    def forget(self, collector: CorpusCollector) -> None:
        self.running.pop(collector, None)

    def cancelled(self, collector: CorpusCollector) -> None:
        kept = collector.cancelled()
        if kept is not None:
            self.show(kept)

    def show(self, result: CorpusResult) -> None:
        """The corpus sweep to keep and show: one that ended, or one opened from the library."""
        self.result = result
        self.ended.emit(result)

    def cancel(self) -> None:
        for job in self.running.values():
            job.cancel()
