"""Jobs off the GUI thread, each with its own signals, as superqt's workers have.

A job's work is a generator of the core's events (hsviewer.core.events). The worker
emits each event as the job's `yielded`, checks for a cancel between events and closes
the generator when one came, so long work stops at its next event. A worker runs its
jobs one at a time on its own thread: one worker holds the model, so a sweep and a
reduction never hook it at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

if TYPE_CHECKING:
    from hsviewer.core.model.loading import ModelHandle

log = logging.getLogger(__name__)


class ModelSlot:
    """The model a worker holds: read and replaced only on the worker's thread."""

    def __init__(self) -> None:
        self.handle: ModelHandle | None = None

    def get(self) -> ModelHandle:
        """The loaded model; a plain error when none is loaded yet."""
        if self.handle is None:
            from hsviewer.core.errors import HsviewerError

            raise HsviewerError("No model is loaded: choose one with File > Choose model.")
        return self.handle


Work = Callable[[ModelSlot], Generator[Any, None, None]]  # a generator: a cancel closes it


class Job(QObject):
    """One submitted piece of work and its signals; it ends in exactly one of returned,
    failed or cancelled, then finished."""

    started = Signal()
    yielded = Signal(object)  # a core event: Progress, a sweep's RunStarted or LayerDone, ...
    returned = Signal(object)  # the result of the work's Finished event
    failed = Signal(object)  # the exception; core.errors.failure_message words it for the user
    cancelled = Signal()
    finished = Signal()

    def __init__(self, name: str, description: str, work: Work, needs_model: bool = True) -> None:
        """name: a short id for logs and tests; description: what the status bar calls it."""
        super().__init__()
        self.name = name
        self.description = description
        self.work = work
        self.needs_model = needs_model
        self._abort = threading.Event()

    def cancel(self) -> None:
        """Stop at the next event; a job still queued never starts."""
        self._abort.set()

    @property
    def abort_requested(self) -> bool:
        return self._abort.is_set()


def sender_job(receiver: QObject) -> Job:
    """The job whose signal the receiver's slot is running for: QObject.sender() (a QObject to the
    stubs) checked to be the Job that the receiver connected to."""
    job = receiver.sender()
    assert isinstance(job, Job)
    return job


class Worker(QObject):
    """A QObject living on its own QThread that runs submitted jobs in order."""

    _submit = Signal(object)

    def __init__(self, name: str) -> None:
        super().__init__()
        self.slot = ModelSlot()
        self._thread = QThread()
        self._thread.setObjectName(name)
        self.moveToThread(self._thread)
        self._submit.connect(self._run)
        self._thread.start()

    @property
    def model(self) -> ModelHandle | None:
        return self.slot.handle

    def submit(self, job: Job) -> None:
        """Queue a job behind the ones already queued."""
        self._submit.emit(job)

    def stop(self, wait_ms: int | None = None) -> bool:
        """End the thread after the running job's current step (call from the GUI thread, after
        cancelling the jobs). False when a step that cannot be interrupted, such as a
        dequantisation, still runs after wait_ms."""
        self._thread.quit()
        return self._thread.wait() if wait_ms is None else self._thread.wait(wait_ms)

    def running(self) -> bool:
        return self._thread.isRunning()

    @Slot(object)
    def _run(self, job: Job) -> None:
        if job.abort_requested:
            job.cancelled.emit()
        else:
            job.started.emit()
            self._drive(job)
        job.finished.emit()

    def _drive(self, job: Job) -> None:
        from hsviewer.core.errors import StreamStopped, user_message
        from hsviewer.core.events import Finished

        stream = getattr(self.slot.handle, "stream", None)
        if stream is not None:  # a streamed pass takes minutes: Cancel stops it at its next module's read
            stream.stop = job._abort
        try:
            events = job.work(self.slot)
            for event in events:
                if isinstance(event, Finished):
                    job.returned.emit(event.result)
                    return
                job.yielded.emit(event)
                if job.abort_requested:
                    events.close()
                    job.cancelled.emit()
                    return
            raise RuntimeError("the work ended without a result")
        except StreamStopped:
            job.cancelled.emit()
        except Exception as e:
            if user_message(e) is None:
                log.exception("%s failed unexpectedly", job.name)
            else:
                log.warning("%s failed: %s", job.name, e)
            job.failed.emit(e)
