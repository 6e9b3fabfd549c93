"""The runs library's commands: runs list, show and export, and compare."""

from __future__ import annotations

import argparse
import os
import sys
import unicodedata
from pathlib import Path
from typing import Any

from hsviewer.cli import _check_outputs, _write, say
from hsviewer.commands.analysis import format_aggregate_table, format_sweep_table
from hsviewer.core.errors import HsviewerError


def run_runs(args: argparse.Namespace) -> int:
    import json

    from hsviewer.core.library import Library

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
        _check_outputs(("OUT.json", args.out))
        _refuse_inside(library.folder, args.out)
        from hsviewer.export import json_writer

        _write((args.out, json_writer(run.envelope())))
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
    if info.kind == "sweep":
        lines.append(format_sweep_table(run.data))
    elif info.kind == "corpus":
        lines.append(format_aggregate_table(run.data))
    elif info.kind == "reduce":
        d = run.data
        lines.append(
            f"Layer {d['layer']}: {d['components']} components keep {d['variance_kept']:.2f}% of the variance; "
            f"correlation {d['correlation']:.5f}; loss {d['clean_loss']:.4f} -> {d['loss']:.4f}"
        )
    return "\n".join(lines)


def run_compare(args: argparse.Namespace) -> int:
    from hsviewer.core.compare import compare
    from hsviewer.core.library import Library
    from hsviewer.export import csv_writer, export_suffix
    from hsviewer.render import comparison_writer

    export_suffix(args.out, (".png", ".svg"), "--out: a comparison")
    if args.csv:
        export_suffix(args.csv, (".csv",), "--csv: the comparison's table")
    _check_outputs(("--out", args.out), ("--csv", args.csv))
    library = Library()
    runs = [_read_run_arg(library, ref) for ref in args.runs]
    comparison = compare(runs, args.metric)
    writes = [(args.out, comparison_writer(args.out, comparison))]
    if args.csv:
        writes.append((args.csv, csv_writer(comparison.rows())))
    _write(*writes)
    depths = ", ".join(f"{c.label}: {c.n_layers} blocks" for c in comparison.curves)
    say(
        printable(f"Compared {len(runs)} runs ({depths}) by {args.metric}. Wrote {args.out}")
        + (f" and {args.csv}" if args.csv else "")
    )
    return 0


def _read_run_arg(library: Any, ref: str) -> Any:
    """A run file, or a run in the library by name or id."""
    from hsviewer.core.library import read_run

    if Path(ref).is_file():
        return read_run(ref)
    if ref.endswith(".json") or os.sep in ref:
        raise HsviewerError(f"No run file at {ref}.")
    return library.load(ref)
