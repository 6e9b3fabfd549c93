"""What the main window and the Runs tab ask of a tab, as Protocols.

To Qt the tabs are plain QWidgets; these say which of their members File > Export figure and
Export data, the saved settings and the Runs tab's Open rely on, so that mypy checks each tab has
them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hsviewer.core.analyses.kind import Rows
    from hsviewer.core.library.store import Run
    from hsviewer.gui.plot_area import PlotArea
    from hsviewer.gui.settings import Settings


class ExportingTab(Protocol):
    """A tab whose panels File > Export figure writes, and whose result File > Export data writes."""

    graphics: PlotArea  # all its panels: "All panels of this tab"

    def plots(self) -> dict[str, Any]:
        """Each panel (a pyqtgraph item) by its title, for one panel's export."""
        ...

    def exportable(self) -> tuple[Any, Rows] | None:
        """The result shown and its CSV rows; None before there is one."""
        ...


class SettingsTab(Protocol):
    """A tab whose inputs are saved when the window closes and restored when it opens."""

    def save_settings(self, settings: Settings) -> None: ...

    def restore_settings(self, settings: Settings) -> None: ...


class RunViewer(Protocol):
    """A tab that redraws saved runs of its kinds (the Runs tab's Open, and the newest runs at start)."""

    @property
    def kinds(self) -> tuple[str, ...]: ...

    def show_run(self, run: Run, set_inputs: bool = True) -> None: ...
