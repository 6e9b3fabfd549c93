"""The app's commands: gui (the default), selftest and screenshots."""

from __future__ import annotations

import argparse
from typing import Any

from hsviewer.commands.common import window_size


def add_gui(sub: Any) -> None:
    """gui: the app, the same as no command."""
    gui = sub.add_parser("gui", help="the app (the same as no command)")
    gui.add_argument("--model", help="default, a model folder, a .gguf file or a hub id (default: the last one)")
    gui.set_defaults(run=run_gui)


def add_selftest(sub: Any) -> None:
    """selftest: a quick headless check of an installation."""
    selftest = sub.add_parser("selftest", help="a quick headless check of image SVD and the model")
    selftest.set_defaults(run=run_selftest)


def add_screenshots(sub: Any) -> None:
    """screenshots DIR: the default analyses, one PNG per tab, then exit."""
    screenshots = sub.add_parser("screenshots", help="run the default analyses, save one PNG per tab, exit")
    screenshots.add_argument("screenshots", metavar="DIR", help="folder for the PNGs")
    screenshots.add_argument("--model", help="the model to show (default: the default model)")
    screenshots.add_argument(
        "--size", type=window_size, metavar="WxH", help="window size in pixels, e.g. 1280x800 (default 1600x1000)"
    )
    screenshots.add_argument(
        "--guide", metavar="GUIDE_DIR", help="also export the Guide's panel pictures there (resources/guide)"
    )
    screenshots.set_defaults(run=run_gui)


def run_gui(args: argparse.Namespace) -> int:
    from hsviewer.gui.app import main as gui_main

    extra = {name: value for name in ("size", "guide") if (value := getattr(args, name, None))}  # screenshots' own
    return gui_main(screenshots=args.screenshots, model=args.model, **extra)


def run_selftest(args: argparse.Namespace) -> int:
    from hsviewer.commands.selftest import selftest

    return selftest()
