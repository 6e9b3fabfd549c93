"""Run jobs off the GUI thread, one at a time per worker, reporting back only by signals.

A job is a function of a JobContext. It may report progress and partial results, and it
sees cancel() as soon as it is requested: jobs submitted before a cancel are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside a job to stop it when the user cancels."""


@dataclass
class Job:
    name: str
    run: Callable[[JobContext], Any]
    generation: int = 0


class JobContext:
    """What a running job may use: the shared model, progress, partial results, cancellation."""

    def __init__(self, worker: Worker, job: Job) -> None:
        self._worker = worker
        self._job = job

    @property
    def model(self) -> Any:
        """The loaded model handle; a plain error when none is loaded yet."""
        if self._worker.model is None:
            from hsviewer.core import HsviewerError

            raise HsviewerError("No model is loaded: choose one with File > Choose model.")
        return self._worker.model

    def set_model(self, handle: Any) -> None:
        self._worker.model = handle

    def cancelled(self) -> bool:
        return self._job.generation != self._worker.generation

    def check_cancelled(self) -> None:
        """Stop here (raise Cancelled) once the job is cancelled."""
        if self.cancelled():
            raise Cancelled

    def progress(self, done: int, total: int, message: str) -> None:
        """Report progress; total 0 means unknown."""
        self._worker.progress.emit(self._job.name, done, total, message)

    def partial(self, value: Any) -> None:
        self._worker.partial.emit(self._job.name, value)


class Worker(QObject):
    """A QObject living on its own QThread that runs submitted jobs in order."""

    started = Signal(str)  # job name
    progress = Signal(str, int, int, str)  # job name, done, total, message
    partial = Signal(str, object)  # job name, partial result
    finished = Signal(str, object)  # job name, result
    failed = Signal(str, str)  # job name, message for the user
    cancelled = Signal(str)  # job name
    _submit = Signal(object)

    def __init__(self, name: str) -> None:
        super().__init__()
        self.model: Any = None
        self.generation = 0
        self._thread = QThread()
        self._thread.setObjectName(name)
        self.moveToThread(self._thread)
        self._submit.connect(self._run)
        self._thread.start()

    def submit(self, name: str, run: Callable[[JobContext], Any]) -> None:
        """Queue a job; it runs after the jobs already queued and ends in exactly one of
        finished, failed or cancelled."""
        self._submit.emit(Job(name, run, self.generation))

    def cancel(self) -> None:
        """Stop the running job at its next check and skip the queued ones."""
        self.generation += 1

    def stop(self, wait_ms: int | None = None) -> bool:
        """Cancel everything and end the thread (call from the GUI thread). False when a step
        that cannot be interrupted, such as a dequantisation, still runs after wait_ms."""
        self.cancel()
        self._thread.quit()
        return self._thread.wait() if wait_ms is None else self._thread.wait(wait_ms)

    def running(self) -> bool:
        return self._thread.isRunning()

    @Slot(object)
    def _run(self, job: Job) -> None:
        from hsviewer.core import HsviewerError

        if job.generation != self.generation:
            self.cancelled.emit(job.name)
            return
        self.started.emit(job.name)
        try:
            result = job.run(JobContext(self, job))
        except Cancelled:
            self.cancelled.emit(job.name)
        except HsviewerError as e:
            log.warning("%s failed: %s", job.name, e)
            self.failed.emit(job.name, str(e))
        except MemoryError:
            log.exception("%s ran out of memory", job.name)
            self.failed.emit(job.name, "Out of memory: try a shorter text, a smaller image or a smaller model.")
        except Exception as e:
            log.exception("%s failed unexpectedly", job.name)
            self.failed.emit(job.name, f"Unexpected error in {job.name}: {type(e).__name__}: {e}")
        else:
            self.finished.emit(job.name, result)
