"""The `hsviewer` command: the GUI with no subcommand, headless analyses with one."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from hsviewer import __version__
from hsviewer._frozen import fix_std_streams
from hsviewer.core.choices import CENTERINGS, CONTROLS, METHODS, METRICS
from hsviewer.core.errors import HsviewerError
from hsviewer.core.memory import DTYPES, STREAMS

EXIT_BAD_INPUT = 2
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
        return args.run(args)
    except HsviewerError as e:
        print(f"hsviewer: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:  # a file in the way that no check foresaw
        where = f"{e.filename}: " if e.filename else ""
        print(f"hsviewer: error: {where}{e.strerror or e}.", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("hsviewer: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as e:
        message = out_of_memory(e)
        if message is None:
            raise
        print(f"hsviewer: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


def out_of_memory(error: BaseException) -> str | None:
    """One line for an allocation that failed (MemoryError, torch's OutOfMemoryError, a
    CPU allocator's RuntimeError), saying how much was asked for when the error says; else None."""
    text = str(error)
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    allocator = isinstance(error, RuntimeError) and re.search(r"can't allocate memory|out of memory", text, re.I)
    if not (isinstance(error, MemoryError) or (oom is not None and isinstance(error, oom)) or allocator):
        return None
    asked = re.search(r"tried to allocate ([\d.]+)\s*(bytes|[KMGT]i?B)", text, re.I)
    size = ""
    if asked:
        amount, unit = asked.groups()
        size = f" ({_bytes(int(amount))} asked for)" if unit == "bytes" else f" ({amount} {unit} asked for)"
    return f"Out of memory{size}: try a shorter text, a smaller model or another device."


def _bytes(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def build_parser() -> argparse.ArgumentParser:
    from hsviewer.commands import analysis  # here, not above: the commands import this module's helpers
    from hsviewer.commands import models as model_commands

    parser = Parser(
        prog="hsviewer",
        description="How much of a language model's hidden state survives dimensionality reduction. "
        "With no command: the app.",
    )
    parser.add_argument("--version", action="version", version=f"hsviewer {__version__}")
    # The old spellings of `gui --model`, `screenshots DIR` and `selftest`, alone before any command.
    parser.add_argument("--model", dest="root_model", help=argparse.SUPPRESS)
    parser.add_argument("--screenshots", dest="root_screenshots", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--selftest", dest="root_selftest", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(run=_run_gui, command=None, model=None, screenshots=None)
    commands = "{gui,image,reduce,sweep,bench,selftest,screenshots,models,cache,runs,compare}"
    sub = parser.add_subparsers(title="commands", metavar=commands, dest="command")

    gui = sub.add_parser("gui", help="the app (the same as no command)")
    gui.add_argument("--model", help="default, a model folder, a .gguf file or a hub id (default: the last one)")
    gui.set_defaults(run=_run_gui)

    image = sub.add_parser("image", help="SVD of an image and its low-rank reconstruction")
    image.add_argument("source", help="image file or http(s) URL")
    image.add_argument("--downsample", type=int, default=2, help="keep every Nth pixel (default 2; 1 = none)")
    _add_k(image, "--variance", 98.0)
    image.add_argument("--out", required=True, type=_path, help="folder for summary.json and PNGs")
    image.set_defaults(run=analysis.run_image)

    reduce = sub.add_parser("reduce", help="reduce one layer's hidden state, then inside the forward pass")
    _add_model_text(reduce)
    reduce.add_argument("--layer", type=int, required=True, help="decoder block, 0-based")
    _add_reduction(reduce)
    reduce.add_argument("--out", required=True, type=_path, help="JSON file")
    _add_no_save(reduce)
    reduce.set_defaults(run=analysis.run_reduce)

    sweep = sub.add_parser("sweep", help="reduce each layer in turn")
    _add_model_text(sweep)
    _add_reduction(sweep)
    sweep.add_argument("--grid", help="more thresholds (or k with --components) for a layer x setting grid: 80,90,99")
    sweep.add_argument("--controls", type=_controls, default=[], help=f"comma-separated: {', '.join(CONTROLS)}")
    sweep.add_argument("--method", choices=METHODS, default=METHODS[0], help=argparse.SUPPRESS)
    sweep.add_argument(
        "--texts",
        metavar="PATH",
        help="a corpus: a folder of .txt files, a .txt file (blank-line separated), .jsonl or .csv with a text "
        "column, or 'bundled'; each text swept, the layers aggregated (mean, 95%% interval)",
    )
    sweep.add_argument("--csv", type=_path, help="also write the per-layer table as CSV")
    sweep.add_argument("--out", required=True, type=_path, help="JSON file")
    _add_no_save(sweep, " A sweep stopped with Ctrl+C is not saved (with --texts, --out keeps the texts done).")
    sweep.set_defaults(run=analysis.run_sweep)

    bench = sub.add_parser("bench", help="benchmarks: sweep speed, load time, image latency, memory, GUI stalls")
    _add_model_text(bench, loading=False)
    bench.add_argument("--skip-gui", action="store_true", help="leave out the GUI event-loop probe")
    bench.add_argument(
        "--device", choices=("cpu", "cuda", "auto"), default="cpu", help="where sweeps are timed (auto: cuda if any)"
    )
    bench.add_argument("--dtype", choices=DTYPES, default="auto", help="the timed sweeps' precision")
    bench.add_argument(
        "--large",
        action="store_true",
        help="instead: a Llama-3-8B-shaped bf16 model (16 GB, built once in the cache) swept streamed in 6 GB",
    )
    bench.add_argument(
        "--large-gguf",
        metavar="PATH",
        help="instead: peak memory of a ~1.1B Q8_0 GGUF (written at PATH if missing) against the plan",
    )
    bench.set_defaults(run=model_commands.run_bench)

    selftest = sub.add_parser("selftest", help="a quick headless check of image SVD and the model")
    selftest.set_defaults(run=_run_selftest)

    screenshots = sub.add_parser("screenshots", help="run the default analyses, save one PNG per tab, exit")
    screenshots.add_argument("screenshots", metavar="DIR", help="folder for the PNGs")
    screenshots.add_argument("--model", help="the model to show (default: the default model)")
    screenshots.add_argument(
        "--size", type=_window_size, metavar="WxH", help="window size in pixels, e.g. 1280x800 (default 1600x1000)"
    )
    screenshots.set_defaults(run=_run_gui)

    models = sub.add_parser("models", help="list the causal LMs on this machine (offline, headers only)")
    models.add_argument("--json", action="store_true", help="print JSON for scripts instead of a table")
    models.add_argument("--path", action="append", default=[], metavar="DIR", help="also search DIR (repeatable)")
    edit = models.add_mutually_exclusive_group()
    edit.add_argument("--add", metavar="DIR", help="remember DIR (or a .gguf file) for every later listing")
    edit.add_argument("--remove", metavar="DIR", help="forget a remembered DIR")
    models.set_defaults(run=model_commands.run_models)

    cache = sub.add_parser("cache", help="the GGUF models converted once and kept in the user cache")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="{list,clear}", required=True)
    cache_sub.add_parser("list", help="name, source GGUF, precision, size on disk and folder of each")
    clear = cache_sub.add_parser("clear", help="delete them all, or the one named")
    clear.add_argument("name", nargs="?", help="a name from hsviewer cache list (all when left out)")
    cache.set_defaults(run=model_commands.run_cache)
    _add_runs_commands(sub)
    return parser


def _add_no_save(parser: argparse.ArgumentParser, stopped: str = "") -> None:
    parser.epilog = f"The run is also saved to the runs library (hsviewer runs list), unless --no-save.{stopped}"
    parser.add_argument("--no-save", action="store_true", help="do not save the run to the runs library")


def _add_runs_commands(sub: Any) -> None:
    from hsviewer.commands import library

    runs = sub.add_parser(
        "runs", help="the runs library: every finished reduce, sweep and corpus sweep, saved by itself"
    )
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="{list,show,export}", required=True)
    listing = runs_sub.add_parser("list", help="id, kind, model, setting, time and name of each saved run")
    listing.add_argument("--json", action="store_true", help="print JSON for scripts instead of a table")
    show = runs_sub.add_parser("show", help="a run's provenance and results")
    show.add_argument("ref", metavar="NAME|ID", help="a run's name or id (or the start of its id)")
    export = runs_sub.add_parser(
        "export",
        help="write a run's JSON (provenance and results) to a file; a reduction's matrices stay in the library",
    )
    export.add_argument("ref", metavar="NAME|ID", help="a run's name or id (or the start of its id)")
    export.add_argument("out", metavar="OUT.json", type=_path, help="the file to write")
    runs.set_defaults(run=library.run_runs)

    compare = sub.add_parser("compare", help="overlay two or more runs' per-layer curves on relative depth")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run files (.json) or names or ids in the library")
    compare.add_argument("--out", required=True, type=_path, help="the figure, .png or .svg")
    compare.add_argument("--csv", type=_path, help="also write the curves and differences as CSV")
    compare.add_argument(
        "--metric", choices=METRICS, default="loss_change", help="what to compare (default loss_change)"
    )
    compare.set_defaults(run=library.run_compare)


def _save_run(
    args: argparse.Namespace, kind: str, handle: Any, result: Any, settings: dict[str, Any], texts: list[str]
) -> None:
    """Keep the finished run in the library; a library that cannot be written is a warning, the outputs stand."""
    if args.no_save:
        return
    from hsviewer.core.provenance import save_run

    try:
        info = save_run(kind, handle, result, settings, texts)
    except OSError as e:
        print(f"warning: could not save the run to the library: {e.strerror or e}", file=sys.stderr)
        return
    print(f"Saved to the runs library as {info.id} ({info.name})", file=sys.stderr)


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
            args.run = _run_selftest
        args.model, args.screenshots = args.root_model, args.root_screenshots


def _path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def _window_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise argparse.ArgumentTypeError(f"a size is WIDTHxHEIGHT in pixels, e.g. 1280x800; got {text!r}")
    return int(width), int(height)


def _controls(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in CONTROLS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"controls are one or more of {', '.join(CONTROLS)}; got {text!r}")
    return names


def _device(text: str) -> str:
    from hsviewer.core.choices import check_device

    try:
        return check_device(text) or text
    except HsviewerError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _size(text: str) -> int:
    from hsviewer.core.memory import parse_size

    try:
        return parse_size(text)
    except HsviewerError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_k(parser: argparse.ArgumentParser, percent_flag: str, default: float) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(percent_flag, type=float, help=f"percent of variance to keep (default {default:g})")
    group.add_argument("--components", type=int, help="keep exactly K components")


def _add_model_text(parser: argparse.ArgumentParser, loading: bool = True) -> None:
    """--model and the text; with `loading`, how to load the model: device, precision, memory budget."""
    parser.add_argument("--model", default="default", help="default, a model folder, a .gguf file or a hub id")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--text-file", type=Path, help="UTF-8 text file (default: the bundled Stedelijk paragraph)")
    group.add_argument("--text", help="the text itself")
    if not loading:
        return
    parser.add_argument("--device", type=_device, help="cpu, cuda, cuda:N or mps (default: cuda when available)")
    parser.add_argument("--device-map", choices=("auto",), help="spread a large model over devices (accelerate)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow a model's own code to run")
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help="precision (auto: float32 when it fits)")
    parser.add_argument("--memory-budget", type=_size, help="plan for this much memory (6GB), not what is free")
    parser.add_argument(
        "--stream",
        choices=STREAMS,
        default="auto",
        help="stream the weights from disk a block at a time (auto: when the model does not fit in memory)",
    )
    parser.add_argument("--plan", action="store_true", help="print the memory plan for model and text, then exit")


def _add_reduction(parser: argparse.ArgumentParser) -> None:
    _add_k(parser, "--threshold", 95.0)
    parser.add_argument("--centering", choices=CENTERINGS, default=CENTERINGS[0])
    parser.add_argument("--exclude-first", action="store_true", help="build the basis without the first token")
    parser.add_argument("--random-basis", action="store_true", help="a random subspace of the same rank (control)")


def _reduction(args: argparse.Namespace) -> Any:
    from hsviewer.core import Reduction

    return Reduction(
        threshold=95.0 if args.threshold is None else args.threshold,
        fixed_components=args.components,
        centering=args.centering,
        exclude_first=args.exclude_first,
        basis="random" if args.random_basis else "top",
    )


def _text(args: argparse.Namespace) -> str:
    from hsviewer.core import read_text_file
    from hsviewer.resources import default_text

    if args.text is not None:
        return _valid_utf8(args.text)
    return read_text_file(args.text_file) if args.text_file else default_text()


def _valid_utf8(text: str) -> str:
    """--text as the shell gave it: bytes that are not UTF-8 (surrogate escapes in argv) become U+FFFD, with a note."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        fixed = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # lone surrogates that are no escaped bytes
        fixed = text.encode("utf-8", "replace").decode("utf-8")
    bad = sum(1 for a in fixed if a == "\ufffd") - text.count("\ufffd")
    print(f"warning: --text is not valid UTF-8: {bad} invalid sequence(s) replaced with U+FFFD.", file=sys.stderr)
    return fixed


def _load(args: argparse.Namespace) -> Any:
    from hsviewer.core import load_model

    return load_model(
        args.model,
        device=args.device,
        dtype=args.dtype,
        device_map=args.device_map,
        trust_remote_code=args.trust_remote_code,
        memory_budget=args.memory_budget,
        stream=args.stream,
        on_event=_ProgressPrinter(),
    )


def _print_plan(args: argparse.Namespace, text: str) -> int:
    """--plan: the load's memory plan for about as many tokens as the text holds, without loading."""
    from hsviewer.core.memory import refusal
    from hsviewer.core.models import plan_load

    tokens = max(2, round(len(text.encode("utf-8")) / 3.5))  # about as many as a BPE tokenizer makes
    plan = plan_load(
        args.model,
        device=args.device,
        dtype=args.dtype,
        memory_budget=args.memory_budget,
        tokens=tokens,
        stream=args.stream,
    )
    if plan is None:
        say(f"No memory plan: the files of {args.model} do not say its size.")
    else:
        say(f"{plan.describe()} (about {tokens} tokens from the text's length)")
        if not plan.fits:
            say(refusal(plan))
    return 0


class _ProgressPrinter:
    """On stderr: a step of counted work (a layer, a converted tensor) rewrites one line; any
    other step gets a line of its own."""

    def __init__(self) -> None:
        self.width = 0  # of the line being rewritten; 0 when none is

    def __call__(self, event: Any) -> None:
        from hsviewer.core.events import Step
        from hsviewer.core.sweep_results import LayerDone

        if not isinstance(event, Step):
            return
        if isinstance(event, LayerDone):
            text = f"{event.label or 'sweep'}: {event.done}/{event.total}"
        else:
            text = event.message
        if event.total:
            print(f"\r{text:<{self.width}}", end="", file=sys.stderr, flush=True)
            self.width = len(text)
            return
        self.end()
        print(text, file=sys.stderr)

    def end(self) -> None:
        """End the line being rewritten, so that what follows starts a line of its own."""
        if self.width:
            print(file=sys.stderr)
        self.width = 0


def _check_outputs(*paths: tuple[str, Path | None]) -> None:
    """Before any work: every output can be a file (not a folder, not a socket), and no two are the same file."""
    from hsviewer.export import output_target

    seen: dict[str, str] = {}
    for flag, path in paths:
        if path is None:
            continue
        try:
            target, _ = output_target(path)
        except OSError as e:
            raise HsviewerError(f"{flag} {path}: {e.strerror}.") from None
        key = os.path.realpath(target)
        if key in seen:
            raise HsviewerError(f"{flag} {path} is the same file as {seen[key]}: give each output its own file.")
        seen[key] = f"{flag} {path}"


def _write(*writes: tuple[Path, Any]) -> None:
    """All outputs or none; a failure names the user's file."""
    from hsviewer.export import write_all

    try:
        write_all(writes)
    except OSError as e:
        raise HsviewerError(f"Could not write {e.filename}: {e.strerror or e}.") from None


def say(text: str) -> None:
    """Print the result to stdout; a full or closed stdout is a note, since the files are already written."""
    try:
        print(text, flush=True)
    except (OSError, ValueError) as e:  # ValueError: a closed file
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more is printed, and exit must not flush
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        print(f"note: could not print to stdout ({reason}); the output files were written.", file=sys.stderr)


def _run_gui(args: argparse.Namespace) -> int:
    from hsviewer.gui.app import main as gui_main

    size = getattr(args, "size", None)  # only `screenshots` has --size
    return gui_main(screenshots=args.screenshots, model=args.model, **({"size": size} if size else {}))


def _run_selftest(args: argparse.Namespace) -> int:
    from hsviewer.selftest import selftest

    return selftest()


class _CorpusPrinter(_ProgressPrinter):
    """The sweep's progress, a line per text, and each skipped text's note."""

    def __call__(self, event: Any) -> None:
        from hsviewer.core.corpus_results import TextSkipped, TextStarted
        from hsviewer.core.events import Finished

        if isinstance(event, (TextStarted, TextSkipped)):
            self.end()
            line = event.message if isinstance(event, TextStarted) else f"note: {event.note}"
            print(line, file=sys.stderr)
            return
        if isinstance(event, Finished):  # the table follows on stdout: end the progress line
            self.end()
        super().__call__(event)


def _print_warnings(warnings: list[str]) -> None:
    for note in warnings:
        print(f"warning: {note}", file=sys.stderr)
