"""`hsviewer bench --soak`: does resident memory grow over repeated runs in one process?

Memory that grows with every run is a leak users of activation tools report (nnsight #102,
#169, #389, #396, #538): hooks left on modules, results kept by a cache, a graph held by a
tensor. This runs REDUCTIONS reductions and then SWEEPS sweeps on one loaded model, first
through the core's functions, then through the GUI's job layer (the window's worker and jobs,
each finished run saved to a scratch runs library as the app saves it), and prints the resident
memory after each. What the first WARM_UP runs of each kind add is the allocator, the caches
and the first result kept; growth after that must stay under LIMIT_PERCENT. A benchmark, run by
hand, never a test: it takes minutes.
"""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

REDUCTIONS = 50
SWEEPS = 10
WARM_UP = 3  # runs of each kind before the baseline is taken
LIMIT_PERCENT = 5.0


@dataclass(frozen=True)
class Series:
    """The resident memory (bytes) after each run of one kind, through one interface."""

    label: str
    rss: list[int]

    def growth_percent(self) -> float:
        """Growth from the last warm-up run to the last run, in percent of the former."""
        base = self.rss[min(WARM_UP, len(self.rss)) - 1]
        return 100.0 * (self.rss[-1] - base) / base


def run_soak(model: str, text: str, layer: int | None = None) -> int:
    """Print each run's resident memory and each series' growth; 0 when every one stays under the limit."""
    with tempfile.TemporaryDirectory(prefix="hsviewer-soak-") as library:
        os.environ["HSVIEWER_DATA_DIR"] = library  # the GUI jobs save their runs here, not in the user's library
        series = [*_core_series(model, text, layer), *_gui_series(model, text, layer)]
    print()
    worst = 0.0
    for s in series:
        growth = s.growth_percent()
        worst = max(worst, growth)
        print(
            f"{s.label}: {len(s.rss)} runs, {_mb(s.rss[0])} after the first, {_mb(s.rss[WARM_UP - 1])} after "
            f"{WARM_UP}, {_mb(s.rss[-1])} after the last: {growth:+.1f}% after the first {WARM_UP}"
        )
    verdict = "within" if worst < LIMIT_PERCENT else "OVER"
    print(f"largest growth after the first {WARM_UP} runs: {worst:+.1f}% ({verdict} the {LIMIT_PERCENT:.0f}% limit)")
    return 0 if worst < LIMIT_PERCENT else 1


def rss_bytes() -> int:
    """This process's resident memory now, after a full collection (what a leak keeps, not garbage)."""
    import psutil

    gc.collect()
    return int(psutil.Process().memory_info().rss)


def _series(label: str, n: int, run: Callable[[], Any]) -> Series:
    rss = []
    for i in range(n):
        run()
        rss.append(rss_bytes())
        print(f"{label} {i + 1}/{n}: {_mb(rss[-1])}", flush=True)
    return Series(label, rss)


def _core_series(model: str, text: str, layer: int | None) -> Iterator[Series]:
    from hsviewer.core import layer_sweep, load_model, reduce_layer

    handle = load_model(model, device="cpu")
    at = handle.n_layers // 2 if layer is None else layer
    yield _series("core reduction", REDUCTIONS, lambda: reduce_layer(handle, text, at))
    yield _series("core sweep", SWEEPS, lambda: layer_sweep(handle, text))


def _gui_series(model: str, text: str, layer: int | None) -> Iterator[Series]:
    """The same runs as the window submits them: its jobs on a worker thread, the GUI thread collecting garbage."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from hsviewer.core.analyses.reduce.spec import ReduceSpec
    from hsviewer.core.analyses.sweep.spec import SweepSpec
    from hsviewer.core.model.load_spec import LoadSpec
    from hsviewer.gui.garbage import collect_on_gui_thread
    from hsviewer.gui.jobs import hidden_job, load_model_job, sweep_job
    from hsviewer.gui.worker import Worker

    app = QApplication.instance() or QApplication([])
    collect_on_gui_thread()
    worker = Worker("soak")
    try:
        info = _wait(app, worker, load_model_job(LoadSpec(source=model, device="cpu")))
        at = info.n_layers // 2 if layer is None else layer
        yield _series("GUI reduction", REDUCTIONS, lambda: _wait(app, worker, hidden_job(text, ReduceSpec(layer=at))))
        yield _series("GUI sweep", SWEEPS, lambda: _wait(app, worker, sweep_job(text, SweepSpec())))
    finally:
        worker.stop()


def _wait(app: Any, worker: Any, job: Any) -> Any:
    """Submit the job and run the event loop until it ends; its result, or a RuntimeError with its message."""
    from PySide6.QtCore import QEventLoop

    loop, outcome = QEventLoop(), dict[str, Any]()
    job.returned.connect(lambda result: outcome.setdefault("result", result))
    job.failed.connect(lambda message: outcome.setdefault("error", message))
    job.finished.connect(loop.quit)
    worker.submit(job)
    loop.exec()
    if "error" in outcome:
        raise RuntimeError(f"{job.description} failed: {outcome['error']}")
    return outcome.get("result")


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB"
