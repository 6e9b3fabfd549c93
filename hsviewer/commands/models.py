"""The model commands: models on this machine, the converted-GGUF cache, and the benchmarks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hsviewer.commands.common import add_model_text, text_of
from hsviewer.core.errors import HsviewerError
from hsviewer.core.model.memory import DTYPES, format_size

if TYPE_CHECKING:
    from hsviewer.core.model.discovery.found import FoundModel


def run_models(args: argparse.Namespace) -> int:
    import json

    from hsviewer.core.model.discovery import remembered
    from hsviewer.core.model.discovery.scan import find_models

    if args.add:
        print(f"Added {remembered.remember_path(args.add)} (saved in {remembered.paths_file()})", file=sys.stderr)
    if args.remove:
        print(f"Removed {remembered.forget_path(args.remove)}", file=sys.stderr)
    for path in args.path:
        if not Path(path).expanduser().exists():
            raise HsviewerError(f"No folder or file at {path}.")
    found = find_models(args.path)
    print(json.dumps([m.to_dict() for m in found], indent=2) if args.json else format_table(found))
    return 0


def format_table(models: Sequence[FoundModel]) -> str:
    """The models as a plain-text table, each column as wide as its widest cell; problems below."""
    from hsviewer.core.model.discovery.table import COLUMNS, row_text

    if not models:
        return "No models found."
    rows = [tuple(c.upper() for c in COLUMNS), *(row_text(m) for m in models)]
    numeric = {COLUMNS.index(c) for c in ("params", "layers", "hidden", "size", "memory")}
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines += [f"note: {m.name}: {m.problem}" for m in models if m.problem]
    return "\n".join(lines)


def run_cache(args: argparse.Namespace) -> int:
    from hsviewer.core.model import gguf_cache

    if args.cache_command == "clear":
        removed = gguf_cache.clear_cached(args.name)
        print(f"Removed {len(removed)} converted model{'s' * (len(removed) != 1)} from {gguf_cache.cache_root()}")
        return 0
    if args.cache_command == "verify":
        return _verify_cache()
    cached = gguf_cache.list_cached()
    if not cached:
        print(f"No converted models in {gguf_cache.cache_root()}")
    for c in cached:
        print(f"{c.name}  {c.dtype}  {format_size(c.size)}  {c.source}\n    {c.folder}")
    return 0


def _verify_cache() -> int:
    """Hash every converted model's files against their manifest; exit 2 when any is damaged."""
    from hsviewer.core.model import gguf_cache

    checked = gguf_cache.verify_cached()
    if not checked:
        print(f"No converted models in {gguf_cache.cache_root()}")
    for c, damage in checked:
        state = "ok" if not damage else "unverified" if damage == gguf_cache.NO_CHECKSUMS else "damaged"
        print(f"{c.name}  {state}{': ' + damage if damage else ''}")
    damaged = [c.name for c, damage in checked if damage and damage != gguf_cache.NO_CHECKSUMS]
    if damaged:
        raise HsviewerError(
            f"{len(damaged)} of {len(checked)} converted models damaged; each is converted again at its next load "
            "(or remove it with hsviewer cache clear NAME)."
        )
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from hsviewer.commands.bench import run_bench

    if args.large:
        from hsviewer.commands.bench_stream import run_stream_bench

        return run_stream_bench(args.text)
    if args.large_gguf:
        from hsviewer.commands.bench_large import run_large_bench

        return run_large_bench(args.large_gguf, text_of(args))
    if args.soak:
        from hsviewer.commands.bench_soak import run_soak

        return run_soak(args.model, text_of(args))
    return run_bench(args.model, text_of(args), with_gui=not args.skip_gui, device=args.device, dtype=args.dtype)


def add_bench(sub: Any) -> None:
    """bench: the benchmarks (run by hand, never a test)."""
    bench = sub.add_parser("bench", help="benchmarks: sweep speed, load time, image latency, memory, GUI stalls")
    add_model_text(bench, loading=False)
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
    bench.add_argument(
        "--soak",
        action="store_true",
        help="instead: resident memory after each of 50 reductions and 10 sweeps, through the core and the GUI's jobs",
    )
    bench.set_defaults(run=run_bench)


def add_models(sub: Any) -> None:
    """models: the causal LMs on this machine."""
    models = sub.add_parser("models", help="list the causal LMs on this machine (offline, headers only)")
    models.add_argument("--json", action="store_true", help="print JSON for scripts instead of a table")
    models.add_argument("--path", action="append", default=[], metavar="DIR", help="also search DIR (repeatable)")
    edit = models.add_mutually_exclusive_group()
    edit.add_argument("--add", metavar="DIR", help="remember DIR (or a .gguf file) for every later listing")
    edit.add_argument("--remove", metavar="DIR", help="forget a remembered DIR")
    models.set_defaults(run=run_models)


def add_cache(sub: Any) -> None:
    """cache: the converted GGUF models."""
    cache = sub.add_parser("cache", help="the GGUF models converted once and kept in the user cache")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="{list,verify,clear}", required=True)
    cache_sub.add_parser("list", help="name, source GGUF, precision, size on disk and folder of each")
    cache_sub.add_parser(
        "verify", help="check every file against the checksum recorded at conversion (exit 2 if any is damaged)"
    )
    clear = cache_sub.add_parser("clear", help="delete them all, or the one named")
    clear.add_argument("name", nargs="?", help="a name from hsviewer cache list (all when left out)")
    cache.set_defaults(run=run_cache)
