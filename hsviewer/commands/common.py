"""What the commands share: argument types and groups, the model and text they name, progress on
stderr, outputs written whole, results on stdout, and a finished run kept in the library."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hsviewer.core.choices import CENTERINGS, CONTROL_SPELLINGS, control_labels
from hsviewer.core.errors import HsviewerError
from hsviewer.core.model.memory import DTYPES, STREAMS

EXIT_BAD_INPUT = 2


def add_no_save(parser: argparse.ArgumentParser, stopped: str = "") -> None:
    parser.epilog = f"The run is also saved to the runs library (hsviewer runs list), unless --no-save.{stopped}"
    parser.add_argument("--no-save", action="store_true", help="do not save the run to the runs library")


def save_run_of(
    save: bool,
    kind: str,
    handle: Any,
    result: Any,
    settings: dict[str, Any],
    texts: list[str],
    world_size: int = 1,
) -> None:
    """Keep the finished run in the library (unless not `save`: --no-save); a library that cannot be written
    is a warning, the outputs stand."""
    if not save:
        return
    from hsviewer.core.library.provenance import save_run

    try:
        info = save_run(kind, handle, result, settings, texts, world_size=world_size)
    except OSError as e:
        print(f"warning: could not save the run to the library: {e.strerror or e}", file=sys.stderr)
        return
    print(f"Saved to the runs library as {info.id} ({info.name})", file=sys.stderr)


def path_arg(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def window_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise argparse.ArgumentTypeError(f"a size is WIDTHxHEIGHT in pixels, e.g. 1280x800; got {text!r}")
    return int(width), int(height)


def controls_arg(text: str) -> list[str]:
    """--controls: comma-separated spellings, as their run labels (exclude_massive is exclude_massive:100)."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"controls are one or more of {CONTROL_SPELLINGS}; got {text!r}")
    try:
        return control_labels(names)
    except HsviewerError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def first_arg(text: str) -> int:
    """--exclude-first N: how many tokens, at least 1 (the flag alone is 1)."""
    if not (text.strip().isascii() and text.strip().isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"--exclude-first takes a whole number of tokens of at least 1; got {text!r}")
    return int(text)


def device_arg(text: str) -> str:
    from hsviewer.core.choices import check_device

    try:
        return check_device(text) or text
    except HsviewerError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def size_arg(text: str) -> int:
    from hsviewer.core.model.memory import parse_size

    try:
        return parse_size(text)
    except HsviewerError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def threads_arg(text: str) -> int:
    if not (text.strip().isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"threads are a whole number of at least 1; got {text!r}")
    return int(text)


def add_k(parser: argparse.ArgumentParser, percent_flag: str, default: float) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(percent_flag, type=float, help=f"percent of variance to keep (default {default:g})")
    group.add_argument("--components", type=int, help="keep exactly K components")


def add_model_text(parser: argparse.ArgumentParser, loading: bool = True) -> None:
    """--model and the text; with `loading`, how to load the model: device, precision, memory budget."""
    parser.add_argument("--model", default="default", help="default, a model folder, a .gguf file or a hub id")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--text-file", type=Path, help="UTF-8 text file (default: the bundled Stedelijk paragraph)")
    group.add_argument("--text", help="the text itself")
    if loading:
        add_loading(parser)


def add_loading(parser: argparse.ArgumentParser) -> None:
    """How to load the model: device, precision, memory budget, streaming, threads, and --plan."""
    parser.add_argument("--device", type=device_arg, help="cpu, cuda, cuda:N or mps (default: cuda when available)")
    parser.add_argument("--device-map", choices=("auto",), help="spread a large model over devices (accelerate)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow a model's own code to run")
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help="precision (auto: float32 when it fits)")
    parser.add_argument("--memory-budget", type=size_arg, help="plan for this much memory (6GB), not what is free")
    parser.add_argument(
        "--stream",
        choices=STREAMS,
        default="auto",
        help="stream the weights from disk a block at a time (auto: when the model does not fit in memory)",
    )
    parser.add_argument("--threads", type=threads_arg, help="CPU threads to compute with (default: torch's own choice)")
    parser.add_argument("--plan", action="store_true", help="print the memory plan for model and text, then exit")


def add_reduction(parser: argparse.ArgumentParser) -> None:
    add_k(parser, "--threshold", 95.0)
    parser.add_argument("--centering", choices=CENTERINGS, default=CENTERINGS[0])
    parser.add_argument(
        "--exclude-first",
        type=first_arg,
        nargs="?",
        const=1,
        default=0,
        metavar="N",
        help="build the basis without the first N tokens, left unchanged (the flag alone: the first token)",
    )
    parser.add_argument("--random-basis", action="store_true", help="a random subspace of the same rank (control)")


def reduction_of(args: argparse.Namespace) -> Any:
    from hsviewer.core import Reduction

    return Reduction(
        threshold=95.0 if args.threshold is None else args.threshold,
        fixed_components=args.components,
        centering=args.centering,
        exclude_first=args.exclude_first,
        basis="random" if args.random_basis else "top",
    )


def sweep_spec_of(args: argparse.Namespace) -> Any:
    """The SweepSpec the reduction options, --grid, --controls and --method say, checked once."""
    from hsviewer.core.analyses.sweep.spec import SweepSpec

    return SweepSpec.parse(
        reduction=reduction_of(args), grid=args.grid or "", controls=args.controls, method=args.method
    )


def text_of(args: argparse.Namespace) -> str:
    from hsviewer.core import read_text_file
    from hsviewer.core.resources import default_text

    if args.text is not None:
        return valid_utf8(args.text)
    return read_text_file(args.text_file) if args.text_file else default_text()


def valid_utf8(text: str) -> str:
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


def load_spec_of(args: argparse.Namespace) -> Any:
    """The LoadSpec the loading options (add_loading) and --model say, checked once."""
    from hsviewer.core.model.load_spec import LoadSpec

    return LoadSpec(
        source=args.model,
        device=args.device,
        dtype=args.dtype,
        device_map=args.device_map,
        trust_remote_code=args.trust_remote_code,
        memory_budget=args.memory_budget,
        stream=args.stream,
        threads=args.threads or 0,
    )


def load(spec: Any, progress: bool = True) -> Any:
    """The model as the LoadSpec says, computing with its threads; with progress, the load's steps on stderr."""
    from hsviewer.core import load_model
    from hsviewer.core.linalg.threads import use_threads

    use_threads(spec.thread_count)
    return load_model(spec, on_event=ProgressPrinter() if progress else None)


def print_plan(spec: Any, text: str) -> int:
    """--plan: the load's memory plan for about as many tokens as the text holds, without loading."""
    from hsviewer.core.model.load_plan import plan_load
    from hsviewer.core.model.memory import refusal

    tokens = max(2, round(len(text.encode("utf-8")) / 3.5))  # about as many as a BPE tokenizer makes
    plan = plan_load(spec, tokens=tokens)
    if plan is None:
        say(f"No memory plan: the files of {spec.source} do not say its size.")
    else:
        say(f"{plan.describe()} (about {tokens} tokens from the text's length)")
        if not plan.fits:
            say(refusal(plan))
            return EXIT_BAD_INPUT  # as the load would end: a script can test the plan before it runs
    return 0


class _ProgressLine:
    """The line on stderr that counted work rewrites: one for every printer, as stderr is one."""

    width = 0  # of the line being rewritten; 0 when none is


def end_progress_line() -> None:
    """End the line being rewritten, so that what follows (a message, the interruption) starts a line of its own."""
    if _ProgressLine.width:
        print(file=sys.stderr)
    _ProgressLine.width = 0


class ProgressPrinter:
    """On stderr: a step of counted work (a layer, a converted tensor) rewrites one line; any
    other step gets a line of its own."""

    def __call__(self, event: Any) -> None:
        from hsviewer.core.analyses.sweep.results import LayerDone
        from hsviewer.core.events import Step

        if not isinstance(event, Step):
            return
        if isinstance(event, LayerDone):
            text = f"{event.label or 'sweep'}: {event.done}/{event.total}"
        else:
            text = event.message
        if event.total:
            print(f"\r{text:<{_ProgressLine.width}}", end="", file=sys.stderr, flush=True)
            _ProgressLine.width = len(text)
            return
        self.end()
        print(text, file=sys.stderr)

    def end(self) -> None:
        end_progress_line()


def check_outputs(*paths: tuple[str, Path | None]) -> None:
    """Before any work: every output can be a file (not a folder, not a socket), and no two are the same file."""
    from hsviewer.core.library.writing import output_target

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


def write_outputs(*writes: tuple[Path, Any]) -> None:
    """All outputs or none; a failure names the user's file."""
    from hsviewer.core.library.writing import write_all

    try:
        write_all(writes)
    except OSError as e:
        raise HsviewerError(f"Could not write {e.filename}: {e.strerror or e}.") from None


def say(text: str, *, wrote_files: bool = True) -> None:
    """Print the result to stdout; a full or closed stdout is a note (saying the files are written,
    where the command wrote some before printing)."""
    try:
        print(text, flush=True)
    except (OSError, ValueError) as e:  # ValueError: a closed file
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more is printed, and exit must not flush
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        written = "; the output files were written" if wrote_files else ""
        print(f"note: could not print to stdout ({reason}){written}.", file=sys.stderr)


class CorpusPrinter(ProgressPrinter):
    """The sweep's progress, a line per text, and each skipped text's note."""

    def __call__(self, event: Any) -> None:
        from hsviewer.core.analyses.corpus.results import TextSkipped, TextStarted
        from hsviewer.core.events import Finished

        if isinstance(event, (TextStarted, TextSkipped)):
            self.end()
            line = event.message if isinstance(event, TextStarted) else f"note: {event.note}"
            print(line, file=sys.stderr)
            return
        if isinstance(event, Finished):  # the table follows on stdout: end the progress line
            self.end()
        super().__call__(event)


def keep_on_interrupt(n: int, unit: str) -> None:
    """Say that a stopped run writes what it has done: `n` texts or layers."""
    end_progress_line()
    done = f"{n} {unit}{'s' * (n != 1)} done"
    print(f"hsviewer: interrupted; writing the {done} (not saved to the runs library)", file=sys.stderr)


def print_warnings(warnings: list[str]) -> None:
    for note in warnings:
        print(f"warning: {note}", file=sys.stderr)


def each(*sinks: Callable[[Any], None]) -> Callable[[Any], None]:
    """One event handler that hands each event to every sink in turn (a collector, then a printer)."""

    def handle(event: Any) -> None:
        for sink in sinks:
            sink(event)

    return handle


def collect(events: Any, collector: Any, printer: Callable[[Any], None], kept: str) -> Any:
    """The events run to their end through the collector and the printer. Ctrl+C or SIGTERM keeps what
    is done, as the app's Cancel does: the collector's cancelled result, whose `kept` ("layers",
    "texts") is said on stderr; with nothing done the interrupt goes on."""
    from hsviewer.core.events import run_to_end

    try:
        return run_to_end(events, each(collector.add, printer))
    except KeyboardInterrupt:
        events.close()
        result = collector.cancelled()
        if result is None or not getattr(result, kept):
            raise
        keep_on_interrupt(len(getattr(result, kept)), kept.removesuffix("s"))
        return result
