"""The `hsviewer` command: the GUI with no subcommand, headless analyses with one."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import NoReturn

import hsviewer
from hsviewer._frozen import fix_std_streams
from hsviewer.commands.common import EXIT_BAD_INPUT, end_progress_line
from hsviewer.commands.interrupts import interrupt_on_sigterm, interrupted_code
from hsviewer.core.errors import HsviewerError, user_message

ROOT_OPTIONS = ("--model", "--screenshots", "--selftest")  # the app's, before any command; kept for old scripts


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes end like hsviewer's own: one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"hsviewer: error: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    """Parse, run, and turn HsviewerError into one line on stderr and exit code 2."""
    fix_std_streams()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a mistake argparse found (one line already printed)
        return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
    try:
        _check_root_options(args)
        from hsviewer.commands import app

        with interrupt_on_sigterm(), _log_warnings_as_lines(args.run is not app.run_gui):
            return args.run(args)
    except KeyboardInterrupt:
        end_progress_line()
        print("hsviewer: interrupted", file=sys.stderr)
        return interrupted_code()
    except Exception as e:
        message = user_message(e)
        if message is None:
            raise
        end_progress_line()
        print(f"hsviewer: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


@contextlib.contextmanager
def _log_warnings_as_lines(enabled: bool) -> Iterator[None]:
    """hsviewer's logged warnings as the CLI's own 'warning: ...' lines, not as raw log text (the
    app has its log; a command that configured no logging got Python's bare last-resort lines)."""
    if not enabled:
        yield
        return
    handler = _WarningLines(logging.WARNING)
    logger = logging.getLogger("hsviewer")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


class _WarningLines(logging.Handler):
    """A logged record as 'warning: MESSAGE' on stderr (whatever sys.stderr is then), on a line of its own."""

    def emit(self, record: logging.LogRecord) -> None:
        end_progress_line()
        print(f"{record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The root parser; each command module adds its own commands' parsers."""
    from hsviewer.commands import analysis, app, intervene, library, models, reproduce

    parser = Parser(
        prog="hsviewer",
        description="How much of a language model's hidden state survives dimensionality reduction. "
        "With no command: the app.",
    )
    parser.add_argument("--version", action="version", version=f"hsviewer {hsviewer.__version__}")
    # The old spellings of `gui --model`, `screenshots DIR` and `selftest`, alone before any command.
    parser.add_argument("--model", dest="root_model", help=argparse.SUPPRESS)
    parser.add_argument("--screenshots", dest="root_screenshots", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--selftest", dest="root_selftest", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(run=app.run_gui, command=None, model=None, screenshots=None)
    adders = [
        app.add_gui,
        analysis.add_image,
        analysis.add_reduce,
        analysis.add_sweep,
        intervene.add_intervene,
        reproduce.add_reproduce,
        models.add_bench,
        app.add_selftest,
        app.add_screenshots,
        models.add_models,
        models.add_cache,
        library.add_runs,
        library.add_compare,
    ]
    names = [add.__name__.removeprefix("add_") for add in adders]
    sub = parser.add_subparsers(title="commands", metavar="{" + ",".join(names) + "}", dest="command")
    for add in adders:
        add(sub)
    return parser


def _check_root_options(args: argparse.Namespace) -> None:
    """The app's options before a command, or two that mean nothing together, are a mistake, never ignored."""
    given = [
        flag
        for flag, value in zip(ROOT_OPTIONS, (args.root_model, args.root_screenshots, args.root_selftest), strict=True)
        if value not in (None, False)
    ]
    if given and args.command is not None:
        raise HsviewerError(
            f"{given[0]} before a command is the app's option; `hsviewer {args.command}` takes its own options "
            f"after the command name (hsviewer {args.command} --help)."
        )
    if args.root_selftest and len(given) > 1:
        raise HsviewerError(f"--selftest checks the default model and image; it takes no {given[1]}.")
    if args.command is None:
        if args.root_selftest:
            from hsviewer.commands import app

            args.run = app.run_selftest
        args.model, args.screenshots = args.root_model, args.root_screenshots
