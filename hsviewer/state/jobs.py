"""The jobs in flight, and what a submitter wants from its job, without Qt.

A job (hsviewer.gui.worker.Job) ends in exactly one of returned, failed or cancelled, then
finished. A tab says what it wants from those as a JobHandlers given at submit; the window
connects them, in one place (hsviewer.gui.job_wiring), and JobsInFlight says what is busy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from psygnal import Signal


class JobLike(Protocol):
    """What the state needs of a job: a name for logs, a description for the status bar, a cancel."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    def cancel(self) -> None: ...


@dataclass(frozen=True)
class JobHandlers:
    """What a submitter wants called as its job goes; None: nothing. They never hold the job
    itself: a job's connections that held it would keep it alive."""

    on_started: Callable[[], None] | None = None
    on_event: Callable[[Any], None] | None = None  # each core event: Progress, RunStarted, LayerDone, Saved...
    on_result: Callable[[Any], None] | None = None  # the work's Finished result
    on_failed: Callable[[BaseException], None] | None = None  # core.errors.failure_message words it
    on_cancelled: Callable[[], None] | None = None
    on_finished: Callable[[], None] | None = None  # after any of the three above


class JobsInFlight:
    """The jobs submitted and not yet finished, in their order: the window is busy while there are any."""

    changed = Signal(bool)  # busy: on every job added or ended

    def __init__(self) -> None:
        self.jobs: list[JobLike] = []

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    def add(self, job: JobLike) -> None:
        self.jobs.append(job)
        self.changed.emit(self.busy)

    def remove(self, job: JobLike) -> None:
        self.jobs.remove(job)
        self.changed.emit(self.busy)

    def only(self, job: JobLike) -> bool:
        """Whether this job is all that is left: its end makes the window ready."""
        return self.jobs == [job]

    def cancel_all(self) -> bool:
        """Cancel every job running or queued (each stops at its next event); False when there was none."""
        for job in self.jobs:
            job.cancel()
        return self.busy


NO_HANDLERS = JobHandlers()  # a job whose submitter wants nothing of it but that it runs
