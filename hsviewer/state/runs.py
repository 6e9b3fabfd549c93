"""The runs listed from the library: a job's Saved event lists its run at once, selected."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psygnal import Signal

if TYPE_CHECKING:
    from hsviewer.core.library.store import Library, Listing, RunInfo


class RunsState:
    """The library's listing as last read; the Runs tab draws each new one."""

    listed = Signal(object, object)  # the Listing, and the id of the run to select (or None)
    save_failed = Signal(str)  # a finished run could not be saved: one line for the status bar

    def __init__(self) -> None:
        self.library: Library | None = None  # set with the tabs: the window shows before the core is imported
        self.listing: Listing | None = None

    @property
    def runs(self) -> list[RunInfo]:
        """The runs listed, newest first; none before the library is read."""
        return [] if self.listing is None else self.listing.runs

    def refresh(self, select: str | None = None) -> None:
        """Read the library again; `select`: the id of a run to select."""
        if self.library is None:
            raise RuntimeError("the runs library is not open yet: open() comes first")
        self.listing = self.library.list()
        self.listed.emit(self.listing, select)

    def saw(self, event: Any) -> None:
        """A job's event: a run saved is listed (and selected), a save that failed is said."""
        from hsviewer.core.library.store import Saved, SaveFailed

        if isinstance(event, Saved):
            self.refresh(select=event.info.id)
        elif isinstance(event, SaveFailed):
            self.save_failed.emit(event.message)
