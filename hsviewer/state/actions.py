"""The menus as data: each entry's menu, text, the window's command it calls, shortcut and when it is on.

MainWindow builds its menus from MENU; a test reads the table without a window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hsviewer.state.app import AppState


def always(state: AppState) -> bool:
    return True


def tabs_ready(state: AppState) -> bool:
    """The tabs are built (the window shows first, then builds them)."""
    return state.ready


@dataclass(frozen=True, kw_only=True)
class MenuEntry:
    """One menu entry; command: the name of the MainWindow method it calls (with no argument)."""

    menu: str
    text: str
    command: str
    shortcut: str = ""
    enabled_when: Callable[[AppState], bool] = tabs_ready
    separator_before: bool = False


MENU: tuple[MenuEntry, ...] = (
    MenuEntry(menu="&File", text="&Open image…", command="open_image_dialog", shortcut="Ctrl+O"),
    MenuEntry(menu="&File", text="Open image &URL…", command="open_url_dialog", shortcut="Ctrl+U"),
    MenuEntry(menu="&File", text="Choose &model…", command="choose_model_dialog", shortcut="Ctrl+M"),
    MenuEntry(menu="&File", text="Con&verted models…", command="converted_models_dialog"),
    MenuEntry(
        menu="&File", text="Export &figure…", command="export_figure_dialog", shortcut="Ctrl+E", separator_before=True
    ),
    MenuEntry(menu="&File", text="Export &data…", command="export_data_dialog", shortcut="Ctrl+Shift+E"),
    MenuEntry(
        menu="&File", text="&Quit", command="close", shortcut="Ctrl+Q", enabled_when=always, separator_before=True
    ),
    MenuEntry(menu="&Help", text="&Guide", command="show_guide", shortcut="F1", enabled_when=always),
    MenuEntry(menu="&Help", text="&About hsviewer", command="show_about", enabled_when=always),
)
