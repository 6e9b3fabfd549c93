"""The model commands: models on this machine, the converted-GGUF cache, and the benchmarks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hsviewer.cli import _text
from hsviewer.core.errors import HsviewerError


def run_models(args: argparse.Namespace) -> int:
    import json

    from hsviewer.core import discovery

    if args.add:
        print(f"Added {discovery.remember_path(args.add)} (saved in {discovery.paths_file()})", file=sys.stderr)
    if args.remove:
        print(f"Removed {discovery.forget_path(args.remove)}", file=sys.stderr)
    for path in args.path:
        if not Path(path).expanduser().exists():
            raise HsviewerError(f"No folder or file at {path}.")
    found = discovery.find_models(args.path)
    print(json.dumps([m.to_dict() for m in found], indent=2) if args.json else discovery.format_table(found))
    return 0


def run_cache(args: argparse.Namespace) -> int:
    from hsviewer.core import gguf_cache

    if args.cache_command == "clear":
        removed = gguf_cache.clear_cached(args.name)
        print(f"Removed {len(removed)} converted model{'s' * (len(removed) != 1)} from {gguf_cache.cache_root()}")
        return 0
    cached = gguf_cache.list_cached()
    if not cached:
        print(f"No converted models in {gguf_cache.cache_root()}")
    for c in cached:
        print(f"{c.name}  {c.dtype}  {c.size / 1e9:.2f} GB  {c.source}\n    {c.folder}")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from hsviewer.bench import run_bench

    if args.large:
        from hsviewer.bench_stream import run_stream_bench

        return run_stream_bench(args.text)
    if args.large_gguf:
        from hsviewer.bench_large import run_large_bench

        return run_large_bench(args.large_gguf, _text(args))
    return run_bench(args.model, _text(args), with_gui=not args.skip_gui, device=args.device, dtype=args.dtype)
