"""The runs library's commands: runs list, show and export, and compare."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from hsviewer.cli import _check_outputs, _write, say
from hsviewer.commands.analysis import format_aggregate_table, format_sweep_table
from hsviewer.core.errors import HsviewerError


def run_runs(args: argparse.Namespace) -> int:
    import json

    from hsviewer.core.library.store import Library

    library = Library()
    if args.runs_command == "list":
        listing = library.list()
        for problem in listing.problems:
            print(f"note: skipped {problem}", file=sys.stderr)
        if args.json:
            say(json.dumps([r.to_dict() for r in listing.runs], indent=2))
        elif not listing.runs:
            say(f"No saved runs in {library.folder}")
        else:
            say("\n".join(f"{r.id}  {r.kind:<6} {r.model}  {r.setting}  {r.when}  {r.name}" for r in listing.runs))
        return 0
    run = library.load(args.ref)
    if args.runs_command == "export":
        _check_outputs(("OUT.json", args.out))
        from hsviewer.core.library.writing import json_writer

        _write((args.out, json_writer(run.envelope())))
        say(f"Wrote {args.out}")
        return 0
    say(format_run(run))
    return 0


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
    from hsviewer.core.library.compare import compare
    from hsviewer.core.library.store import Library
    from hsviewer.core.library.writing import csv_writer, export_suffix
    from hsviewer.gui.render import comparison_writer

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
        f"Compared {len(runs)} runs ({depths}) by {args.metric}. Wrote {args.out}"
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
