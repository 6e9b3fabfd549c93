"""Python's cyclic garbage collector runs in whichever thread happens to allocate. A Qt object
it frees is destroyed in that thread, and a widget destroyed on a worker thread crashes the
app ("pure virtual method called", "Timers cannot be started from another thread"). So
automatic collection is switched off and the GUI thread collects on a timer instead, with
pyqtgraph's GarbageCollector, made for this.
"""

from __future__ import annotations

from typing import Any

_collector: Any = None


def collect_on_gui_thread() -> None:
    """Call from the GUI thread, before any job runs; later calls do nothing."""
    global _collector
    if _collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _collector = GarbageCollector(interval=1.0)
