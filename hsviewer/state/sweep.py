"""The layer sweep tab's state: the sweep drawn, its result, the sweeps in flight and what a cancel keeps.

Events come from the core's sweep (RunStarted, LayerDone) through the jobs' handlers that
track() gives, or from a finished result replayed; the tab draws what the signals say.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psygnal import Signal

from hsviewer.state.inputs import SweepInputs, differences
from hsviewer.state.jobs import JobHandlers, JobLike

if TYPE_CHECKING:
    from hsviewer.core.analyses.sweep.results import RunStarted, SweepCollector, SweepResult


@dataclass(eq=False)
class SweepJob:
    """One sweep submitted and not finished: its job, its text and the collector of its events."""

    job: JobLike
    text: str | None
    collector: SweepCollector = field(default_factory=lambda: new_collector())


def new_collector() -> SweepCollector:
    from hsviewer.core.analyses.sweep.results import SweepCollector

    return SweepCollector()


class SweepState:
    """The sweep shown (its collector, its plain run's start, its result) and the sweeps in flight."""

    started = Signal(object)  # the plain run's RunStarted: clear the panels and size them
    control_started = Signal(object)  # a control run's RunStarted
    layer_done = Signal(object)  # a LayerDone; the collector has it
    finished = Signal(object)  # a SweepResult: ended, cancelled after some layers, or redrawn
    ended_empty = Signal(str)  # "cancelled" (before the first layer) or "failed": no new result

    def __init__(self) -> None:
        self.result: SweepResult | None = None  # the finished (or cancelled) sweep shown
        self.start: RunStarted | None = None  # the plain run's start: tokens, clean loss, sizes
        self.collector: SweepCollector | None = None  # the sweep being drawn, as its events arrive
        self.made_with: SweepInputs | None = None  # what the sweep shown was asked for
        self.running: list[SweepJob] = []

    @property
    def busy(self) -> bool:
        return bool(self.running)

    def track(self, job: JobLike, text: str | None) -> JobHandlers:
        """Follow a sweep job of this text: the handlers to submit it with."""
        tracked = SweepJob(job, text)
        self.running.append(tracked)
        return JobHandlers(
            on_event=functools.partial(self.event, tracked),
            on_result=self.finish,
            on_failed=self.failed,
            on_cancelled=functools.partial(self.cancelled, tracked),
            on_finished=functools.partial(self.running.remove, tracked),
        )

    def event(self, tracked: SweepJob, event: Any) -> None:
        """One of a tracked sweep's events: its collector becomes the one drawn."""
        self.collector = tracked.collector
        self.collector.add(event)
        self._announce(event, tracked.text)

    def _announce(self, event: Any, text: str | None) -> None:
        from hsviewer.core.analyses.sweep.results import LayerDone, RunStarted

        if isinstance(event, RunStarted) and event.label == "":
            self.start, self.result = event, None
            self.made_with = SweepInputs.of_start(event, text)
            self.started.emit(event)
        elif isinstance(event, RunStarted):
            self.control_started.emit(event)
        elif isinstance(event, LayerDone):
            self.layer_done.emit(event)

    def finish(self, result: SweepResult) -> None:
        """The sweep ended, or was cancelled after some layers: its result is the one kept for export."""
        self.result = result
        self.finished.emit(result)

    def cancelled(self, tracked: SweepJob) -> None:
        """A cancel keeps the layers done, when the sweep cancelled is the one drawn."""
        kept = tracked.collector.cancelled() if tracked.collector is self.collector else None
        if kept is None:
            self.ended_empty.emit("cancelled")
        else:
            self.finish(kept)

    def failed(self, error: BaseException) -> None:
        self.ended_empty.emit("failed")

    def cancel(self) -> None:
        """Stop the sweeps in flight (the running one after its current layer)."""
        for tracked in self.running:
            tracked.job.cancel()

    def replay(self, result: SweepResult, hidden_size: int, text: str | None = None) -> None:
        """Draw a finished sweep from the events it gave live, without computing."""
        self.collector = new_collector()
        for event in result.events(hidden_size):
            self.collector.add(event)
            self._announce(event, text)
        self.finish(result)

    def out_of_date(self, asked: SweepInputs) -> tuple[str, ...]:
        """What differs between the inputs asked for now and those of the sweep shown; () when none shown."""
        return () if self.made_with is None else differences(self.made_with, asked)
