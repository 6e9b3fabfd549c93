"""The reproduce command: three published layer-geometry curves measured on a model over a corpus, written
as figures, a JSON of the numbers and a Markdown page whose verdicts are read from those numbers."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from hsviewer.commands.common import (
    CorpusPrinter,
    add_loading,
    check_outputs,
    collect,
    load,
    load_spec_of,
    path_arg,
    print_plan,
    print_warnings,
    say,
    write_outputs,
)
from hsviewer.commands.interrupts import interrupted_code
from hsviewer.core.errors import HsviewerError

DATA = "reproductions.json"  # in --out, beside the figures


def run_reproduce(args: argparse.Namespace) -> int:
    from hsviewer.core.analyses.corpus.texts import read_corpus

    if args.out.exists() and not args.out.is_dir():
        raise HsviewerError(f"--out {args.out} is a file; it names the folder for the figures and {DATA}.")
    check_outputs(("--page", args.page), ("--out", args.out / DATA))  # before any work: they need no torch
    corpus = read_corpus(args.texts)
    for note in corpus.notes:
        print(f"note: {note}", file=sys.stderr)
    print_warnings(corpus.warnings)
    if args.plan:
        return print_plan(load_spec_of(args), max((t.text for t in corpus.texts), key=len))
    result = _measure(args, corpus)
    _write(args, result)
    return interrupted_code() if result.cancelled else 0


def _measure(args: argparse.Namespace, corpus: Any) -> Any:
    """Every text's two clean passes, a line per text on stderr; Ctrl+C keeps the texts done."""
    from hsviewer.core.analyses.geometry.results import GeometryCollector
    from hsviewer.core.analyses.geometry.run import iter_reproduction

    handle = load(load_spec_of(args))
    events = iter_reproduction(
        handle, corpus.texts, source=corpus.source, seed=args.seed, notes=[*corpus.notes, *corpus.warnings]
    )
    printer, collector = TextPrinter(), GeometryCollector()
    return collect(events, collector, printer, "texts")


def _write(args: argparse.Namespace, result: Any) -> None:
    """The figures, the JSON and the page: all written or none."""
    from hsviewer.core.analyses.geometry.findings import Findings, document
    from hsviewer.core.analyses.geometry.page import page
    from hsviewer.core.library.writing import json_writer, text_writer
    from hsviewer.gui.reproduction_figures import figure_writers

    found = Findings.of(result)
    figures = figure_writers(result, found, args.out)
    base = args.page.parent
    relative = {path.stem: Path(os.path.relpath(path, base)).as_posix() for path, _ in figures}
    data = Path(os.path.relpath(args.out / DATA, base)).as_posix()
    text = page(result, found, relative, command_of(args), data)
    write_outputs(*figures, (args.out / DATA, json_writer(document(result))), (args.page, text_writer(text)))
    say(f"{len(result.texts)} texts of {result.source} on {result.model}:")
    for name, finding in (
        ("anisotropy, every token", found.anisotropy),
        ("anisotropy, without the first token", found.anisotropy_without_first),
        ("massive activations", found.massive),
        ("intrinsic dimension, shuffled", found.dimension),
    ):
        say(f"  {name}: {finding.verdict if finding else 'cannot say'}" + (f" ({finding.reason})" if finding else ""))
    say(f"Wrote {args.page}, {args.out / DATA} and {len(figures)} figures in {args.out}")


def command_of(args: argparse.Namespace) -> str:
    """The command line that makes the same page (the loading options that change numbers included)."""
    words = ["hsviewer", "reproduce", "--model", args.model, "--texts", args.texts]
    words += ["--out", str(args.out), "--page", str(args.page)]
    if args.seed:
        words += ["--seed", str(args.seed)]
    if args.dtype != "auto":
        words += ["--dtype", args.dtype]
    return shlex.join(words)


class TextPrinter(CorpusPrinter):
    """A line per text started, its token count when done, and each skipped text's note."""

    def __call__(self, event: Any) -> None:
        from hsviewer.core.analyses.geometry.results import GeometryTextDone

        if isinstance(event, GeometryTextDone):
            self.end()
            print(f"  done: {event.result.tokens} tokens", file=sys.stderr)
            return
        super().__call__(event)


def add_reproduce(sub: Any) -> None:
    """reproduce: anisotropy, massive activations and intrinsic dimension over depth, against the papers."""
    parser = sub.add_parser(
        "reproduce",
        help="reproduce three published layer-geometry curves on a model over a corpus",
        description="Clean forward passes over each text of a corpus (and over its tokens shuffled), then "
        "per block: anisotropy with and without the first token (Razzhigaev et al. 2023), the top activation "
        "ratio (Sun et al. 2024), TwoNN intrinsic dimension as written and shuffled (Viswanathan et al. 2025). "
        "Writes a figure per curve, the numbers as JSON, and a Markdown page saying what agrees with each paper.",
    )
    parser.add_argument("--model", default="default", help="default, a model folder, a .gguf file or a hub id")
    add_loading(parser)
    parser.add_argument(
        "--texts",
        default="bundled",
        metavar="PATH",
        help="the corpus: bundled (default), a folder of .txt files, a .txt file (blank-line separated), "
        ".jsonl or .csv with a text column",
    )
    parser.add_argument(
        "--out", type=path_arg, default=Path("docs/reproductions"), help="folder for the figures and the JSON"
    )
    parser.add_argument("--page", type=path_arg, default=Path("docs/reproductions.md"), help="the Markdown page")
    parser.add_argument("--seed", type=int, default=0, help="the shuffled pass's token order (default 0)")
    parser.epilog = "Stopped with Ctrl+C or SIGTERM, it writes the texts done. Nothing is saved to the runs library."
    parser.set_defaults(run=run_reproduce)
