"""The whole app's state: the model, the tabs being ready, the jobs, the sweeps and the runs."""

from __future__ import annotations

from psygnal import Signal

from hsviewer.state.corpus import CorpusState
from hsviewer.state.jobs import JobsInFlight
from hsviewer.state.model import ModelInfo
from hsviewer.state.runs import RunsState
from hsviewer.state.sweep import SweepState


class AppState:
    """What the window shows, held outside it (napari's ViewerModel): the views observe its signals."""

    model_changed = Signal(object)  # the ModelInfo of a model that loaded
    ready_changed = Signal(bool)  # the tabs are built: the menus' entries that need them work

    def __init__(self) -> None:
        self.model: ModelInfo | None = None
        self.ready = False
        self.jobs = JobsInFlight()
        self.sweep = SweepState()
        self.corpus = CorpusState()
        self.runs = RunsState()

    def set_model(self, info: ModelInfo) -> None:
        """A model loaded (a failed or refused load leaves the one before)."""
        self.model = info
        self.model_changed.emit(info)

    def set_ready(self) -> None:
        self.ready = True
        self.ready_changed.emit(True)
