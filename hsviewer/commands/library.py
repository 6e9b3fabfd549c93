"""The runs library's commands: runs list, show and export, and compare."""

from __future__ import annotations

import argparse
import os
import sys
import unicodedata
from pathlib import Path
from typing import Any

from hsviewer.commands.common import check_outputs, path_arg, say, write_outputs
from hsviewer.core.choices import METRICS
from hsviewer.core.errors import HsviewerError


def run_runs(args: argparse.Namespace) -> int:
    import json

    from hsviewer.core.library.store import Library

    library = Library()
    if args.runs_command == "list":
        listing = library.list()
        for problem in listing.problems:
            print(f"note: skipped {printable(problem)}", file=sys.stderr)
        if args.json:
            say(json.dumps([r.to_dict() for r in listing.runs], indent=2), wrote_files=False)
        elif not listing.runs:
            say(f"No saved runs in {printable(str(library.folder))}", wrote_files=False)
        else:
            lines = [f"{r.id}  {r.kind:<6} {r.model}  {r.setting}  {r.when}  {r.name}" for r in listing.runs]
            say(printable("\n".join(lines), keep="\n"), wrote_files=False)
        return 0
    run = library.load(args.ref)
    if args.runs_command == "export":
        check_outputs(("OUT.json", args.out))
        _refuse_inside(library.folder, args.out)
        from hsviewer.core.library.writing import json_writer

        write_outputs((args.out, json_writer(run.envelope())))
        say(f"Wrote {args.out}")
        return 0
    say(printable(format_run(run), keep="\n"), wrote_files=False)
    return 0


ESCAPED = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # controls, format marks (bidi overrides), unassigned


def printable(text: str, keep: str = "") -> str:
    """The text with every control or invisible format character (a terminal escape, a bidi override)
    written as its Python escape, so that what a run file holds cannot drive the terminal; `keep`: those
    printed as they are (the newlines between lines)."""
    return "".join(
        c if c in keep or unicodedata.category(c) not in ESCAPED else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def _refuse_inside(folder: Path, out: Path) -> None:
    """An export is a copy for elsewhere: inside the library it would be a second file with a run's id."""
    library, target = Path(os.path.realpath(folder)), Path(os.path.realpath(out))
    if target.is_relative_to(library):
        raise HsviewerError(
            f"OUT.json {out} is inside the runs library ({folder}): export to a file outside it "
            "(the run is already in the library)."
        )


def format_run(run: Any) -> str:
    """A run's name, provenance and results, as text."""
    info, prov = run.info, run.provenance
    model = prov.get("model", {})
    lines = [
        f"{info.name}  ({info.kind}, id {info.id}, saved {info.created})",
        f"model: {model.get('name', info.model)} from {model.get('source', '?')}, {prov.get('dtype', '?')} "
        f"on {prov.get('device', '?')}",
    ]
    lines += [f"  {f['path']}: {f['size']} bytes, sha256 {f['sha256']}" for f in model.get("files", [])]
    versions = ", ".join(f"{k} {v}" for k, v in prov.get("versions", {}).items())
    lines += [f"settings: {prov.get('settings', {})}", f"versions: {versions}", f"file: {info.path}"]
    from hsviewer.core.analyses.registry import SAVED

    summary = SAVED[info.kind].summary(run.data)
    if summary:
        lines.append(summary)
    return "\n".join(lines)


def run_compare(args: argparse.Namespace) -> int:
    from hsviewer.core.library.compare import compare
    from hsviewer.core.library.store import Library
    from hsviewer.core.library.writing import csv_writer, export_suffix
    from hsviewer.gui.render import comparison_writer

    export_suffix(args.out, (".png", ".svg"), "--out: a comparison")
    if args.csv:
        export_suffix(args.csv, (".csv",), "--csv: the comparison's table")
    check_outputs(("--out", args.out), ("--csv", args.csv))
    library = Library()
    runs = [_read_run_arg(library, ref) for ref in args.runs]
    comparison = compare(runs, args.metric)
    writes = [(args.out, comparison_writer(args.out, comparison))]
    if args.csv:
        writes.append((args.csv, csv_writer(comparison.rows())))
    write_outputs(*writes)
    depths = ", ".join(f"{c.label}: {c.n_layers} blocks" for c in comparison.curves)
    say(
        printable(f"Compared {len(runs)} runs ({depths}) by {args.metric}. Wrote {args.out}")
        + (f" and {args.csv}" if args.csv else "")
    )
    return 0


def _read_run_arg(library: Any, ref: str) -> Any:
    """A run file, or a run in the library by name or id."""
    from hsviewer.core.library.store import read_run

    if Path(ref).is_file():
        return read_run(ref)
    if ref.endswith(".json") or os.sep in ref:
        raise HsviewerError(f"No run file at {ref}.")
    return library.load(ref)


def add_runs(sub: Any) -> None:
    """runs: the runs library's list, show and export."""
    runs = sub.add_parser(
        "runs", help="the runs library: every finished reduce, sweep, corpus sweep and intervention, saved by itself"
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
    export.add_argument("out", metavar="OUT.json", type=path_arg, help="the file to write")
    runs.set_defaults(run=run_runs)


def add_compare(sub: Any) -> None:
    """compare: several runs' curves on relative depth."""
    compare = sub.add_parser("compare", help="overlay two or more runs' per-layer curves on relative depth")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run files (.json) or names or ids in the library")
    compare.add_argument("--out", required=True, type=path_arg, help="the figure, .png or .svg")
    compare.add_argument("--csv", type=path_arg, help="also write the curves and differences as CSV")
    compare.add_argument(
        "--metric", choices=METRICS, default="loss_change", help="what to compare (default loss_change)"
    )
    compare.set_defaults(run=run_compare)
