"""The one place a job's signals are connected: to what its submitter asked for, then to the window.

A job's signals come from its worker's thread; connected here to callables of the GUI thread's
objects, each runs queued on the GUI thread, where widgets may be touched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hsviewer.gui.worker import Job
    from hsviewer.state.jobs import JobHandlers

Submit = Callable[["Job", "JobHandlers"], None]  # the main window's submit, as the tabs and dialogs get it


def connect_job(job: Job, handlers: JobHandlers) -> None:
    """Connect each handler given to its signal of the job, in the order the signals come."""
    pairs = (
        (job.started, handlers.on_started),
        (job.yielded, handlers.on_event),
        (job.returned, handlers.on_result),
        (job.failed, handlers.on_failed),
        (job.cancelled, handlers.on_cancelled),
        (job.finished, handlers.on_finished),
    )
    for signal, handler in pairs:
        if handler is not None:
            signal.connect(handler)
