"""The intervene command: a layer's massive activations set to their mean (or zero), and what breaks."""

from __future__ import annotations

import argparse
import math
from typing import Any

from hsviewer.commands.common import (
    ProgressPrinter,
    add_model_text,
    add_no_save,
    check_outputs,
    collect,
    load,
    load_spec_of,
    path_arg,
    print_plan,
    print_warnings,
    save_run_of,
    say,
    text_of,
    write_outputs,
)
from hsviewer.commands.interrupts import interrupted_code
from hsviewer.core.choices import INTERVENTION_CONTROLS, VALUES
from hsviewer.core.errors import HsviewerError


def run_intervene(args: argparse.Namespace) -> int:
    check_outputs(("--out", args.out), ("--csv", args.csv))  # the checks first: they need no torch
    from hsviewer.core.analyses.intervene.spec import InterveneSpec

    spec = InterveneSpec(layers=args.layer, ratio=args.ratio, value=args.value, control=args.control, seed=args.seed)
    text, loading = text_of(args), load_spec_of(args)
    if args.plan:
        return print_plan(loading, text)
    from hsviewer.core.analyses.intervene.kind import INTERVENE
    from hsviewer.core.analyses.intervene.results import InterventionCollector
    from hsviewer.core.analyses.intervene.run import iter_intervene

    handle = load(loading)
    events = iter_intervene(handle, text, spec)
    printer, collector = ProgressPrinter(), InterventionCollector()
    result = collect(events, collector, printer, "layers")
    printer.end()
    print_warnings(result.warnings)
    data = result.to_dict()
    _write(args, data, result)
    if not result.cancelled:
        save_run_of(not args.no_save, INTERVENE.name, handle, result, spec.settings(), [text])
    say(INTERVENE.summary(data))
    if args.out:
        say(f"Wrote {args.out}" + (f" and {args.csv}" if args.csv else ""))
    elif args.csv:
        say(f"Wrote {args.csv}")
    return interrupted_code() if result.cancelled else 0


def _write(args: argparse.Namespace, data: dict[str, Any], result: Any) -> None:
    """--out's JSON and --csv's table, both written or neither (each optional)."""
    from hsviewer.core.analyses.intervene.kind import INTERVENE
    from hsviewer.core.library.writing import csv_writer, json_writer

    writes = [(path, write) for path, write in ((args.out, json_writer(data)),) if path is not None]
    if args.csv:
        writes.append((args.csv, csv_writer(INTERVENE.table(result))))
    if writes:
        write_outputs(*writes)


def layers_arg(text: str) -> str:
    """--layer as written, once its spelling is checked (the model's depth is checked once it is loaded)."""
    from hsviewer.core.analyses.intervene.layers import parse_layers

    try:
        parse_layers(text)
    except HsviewerError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def ratio_arg(text: str) -> float:
    try:
        ratio = float(text)
    except ValueError:
        ratio = math.nan
    if not math.isfinite(ratio) or ratio < 1:
        raise argparse.ArgumentTypeError(f"the ratio is a number of at least 1 (times the median); got {text!r}")
    return ratio


def add_intervene(sub: Any) -> None:
    """intervene: massive activations set to their mean or zero (Sun et al. 2024)."""
    parser = sub.add_parser(
        "intervene",
        help="set a layer's massive activations to their mean (or zero) and measure loss and KL",
        description="At each chosen layer, the entries of the hidden state over RATIO times its median |activation| "
        "are set to their column's mean over the other tokens (or to zero); the rest of the model then runs "
        "from that layer, and loss and KL are measured against the clean run (Sun et al. 2024).",
    )
    add_model_text(parser)
    parser.add_argument("--layer", type=layers_arg, required=True, help="N, A-B, a,b,c or all (0-based blocks)")
    parser.add_argument("--ratio", type=ratio_arg, default=100.0, help="times the median |activation| (default 100)")
    parser.add_argument("--value", choices=VALUES, default=VALUES[0], help="what the entries are set to (default mean)")
    parser.add_argument(
        "--control", choices=INTERVENTION_CONTROLS, help="also set as many random entries (seeded) the same way"
    )
    parser.add_argument("--seed", type=int, default=0, help="the random control's seed (default 0)")
    parser.add_argument("--out", type=path_arg, help="JSON file")
    parser.add_argument("--csv", type=path_arg, help="also write the per-layer table as CSV")
    stopped = " An intervention stopped with Ctrl+C or SIGTERM is not saved; --out and --csv keep the layers done."
    add_no_save(parser, stopped)
    parser.set_defaults(run=run_intervene)
