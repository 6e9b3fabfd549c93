"""Work around PySide6 6.12.0's reference-count bug.

In PySide6 6.12.0 (6.11.3 is fine), Python overrides of QGraphicsItem.itemChange and
item reparenting release a reference to None (and sometimes True/False) that they never
took: creating and destroying one pyqtgraph PlotItem costs None about 250 references.
After a few windows, or at exit, CPython 3.11 aborts with "none_dealloc". Until PySide6
is pinned away from 6.12.0, give those singletons a billion spare references, which is
what CPython 3.12+ does for them anyway (immortal objects).
"""

from __future__ import annotations

import ctypes
import sys

import PySide6

AFFECTED = ("6.12.0",)
SPARE_REFERENCES = 10**9
_applied = False


def apply() -> None:
    """Make None, True and False effectively immortal, on the affected PySide6 and CPython < 3.12 only."""
    global _applied
    if _applied or PySide6.__version__ not in AFFECTED or sys.version_info >= (3, 12):
        return
    if sys.implementation.name != "cpython":
        return
    _applied = True
    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += SPARE_REFERENCES
