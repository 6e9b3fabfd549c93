"""How many CPU threads torch computes with: --threads and the model dialog's setting.

torch's own choice (one per core) is the default. On cores shared with other work it can be
slow: threads that wait for each other spin, and a sweep with 2 threads on 2 busy cores took
5x as long as with 1. The count is set on the thread that will do the work: with OpenMP each
thread keeps the count it had when it first computed.
"""

from __future__ import annotations

import torch

from hsviewer.core.errors import HsviewerError
from hsviewer.core.linalg import lowrank

_TORCH_OWN = torch.get_num_threads()  # torch's choice, before anything here changed it
_changed = False  # whether use_threads set a count that None must undo


def check_threads(value: object) -> int:
    """value as a thread count: a whole number of at least 1."""
    if lowrank.is_whole(value) and value >= 1:
        return int(value)
    raise HsviewerError(f"Threads must be a whole number of at least 1; got {value!r}.")


def use_threads(threads: int | None) -> None:
    """Compute with `threads` CPU threads from now on, on this thread; None: torch's own choice
    (what it was before a count was set here; left alone when none was)."""
    global _changed
    if threads is None and not _changed:
        return
    torch.set_num_threads(_TORCH_OWN if threads is None else check_threads(threads))
    _changed = threads is not None
