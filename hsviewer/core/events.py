"""What long work reports: analyses are generators of these events.

A consumer (the CLI, the API's plain functions, the GUI's worker) iterates the events
and may stop at any of them: closing the generator is how work is cancelled, as in
superqt's generator workers. The last event of work that ran to its end is Finished.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from hsviewer.core.errors import HsviewerError

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Progress:
    """A step of the work; total 0 when its length is unknown."""

    message: str
    done: int = 0
    total: int = 0


@runtime_checkable
class Step(Protocol):
    """Any event that says how far the work has come (Progress, a sweep's LayerDone)."""

    @property
    def message(self) -> str: ...

    @property
    def done(self) -> int: ...

    @property
    def total(self) -> int: ...


@dataclass(frozen=True, kw_only=True)
class Finished(Generic[T]):
    """The work's result: always the last event."""

    result: T


Events = Generator[Any, None, None]


def run_to_end(events: Events, on_event: Callable[[Any], None] | None = None) -> Any:
    """Drive events to their Finished event and return its result (the plain API's way)."""
    for event in events:
        if on_event is not None:
            on_event(event)
        if isinstance(event, Finished):
            events.close()
            return event.result
    raise HsviewerError("The work ended without a result.")
