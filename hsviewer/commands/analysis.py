"""The analysis commands: image, reduce and sweep (one text or a corpus), and their tables as text."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hsviewer.commands.common import (
    CorpusPrinter,
    ProgressPrinter,
    add_k,
    add_model_text,
    add_no_save,
    add_reduction,
    check_outputs,
    collect,
    controls_arg,
    load,
    load_spec_of,
    path_arg,
    print_plan,
    print_warnings,
    reduction_of,
    save_run_of,
    say,
    sweep_spec_of,
    text_of,
    write_outputs,
)
from hsviewer.commands.interrupts import interrupted_code
from hsviewer.core.choices import CONTROL_SPELLINGS, METHODS
from hsviewer.core.errors import HsviewerError


def run_image(args: argparse.Namespace) -> int:
    from hsviewer.core import image_svd
    from hsviewer.core.library.writing import gray_png_writer, json_writer
    from hsviewer.gui.render import spectrum_png

    out = args.out
    if out.exists() and not out.is_dir():
        raise HsviewerError(f"--out {out} is a file; it names the folder for summary.json and the PNGs.")
    result = image_svd(args.source, args.downsample, args.components, args.variance)
    for note in result.warnings:
        print(f"note: {note}", file=sys.stderr)
    write_outputs(
        (out / "original.png", gray_png_writer(result.image)),
        (out / "reconstruction.png", gray_png_writer(result.reconstruction())),
        (out / "spectrum.png", lambda tmp: spectrum_png(tmp, result.s, result.cumulative_percent, result.components)),
        (out / "summary.json", json_writer(result.to_dict())),
    )
    say(
        f"{result.image.shape[0]} x {result.image.shape[1]} image, rank {result.rank}: "
        f"{result.components} components keep {result.variance_kept():.2f}% of the variance, "
        f"Frobenius error {result.frobenius_error():.4g}. Wrote {out}/"
    )
    return 0


def run_reduce(args: argparse.Namespace) -> int:
    check_outputs(("--out", args.out))  # the checks first: they need no torch
    from hsviewer.core.analyses.reduce.spec import ReduceSpec

    spec, text = ReduceSpec(layer=args.layer, reduction=reduction_of(args)), text_of(args)
    loading = load_spec_of(args)
    if args.plan:
        return print_plan(loading, text)
    from hsviewer.core.analyses.reduce.run import iter_reduce
    from hsviewer.core.events import run_to_end
    from hsviewer.core.library.writing import json_writer

    handle = load(loading)
    result = run_to_end(iter_reduce(handle, text, spec))
    print_warnings(result.warnings)
    write_outputs((args.out, json_writer(result.to_dict())))
    save_run_of(not args.no_save, "reduce", handle, result, spec.settings(), [text])
    say(
        f"Layer {result.layer}: {result.components} of {len(result.s)} components keep "
        f"{result.variance_kept:.2f}% of the variance; correlation {result.correlation:.5f}; "
        f"rank {result.rank_original} -> {result.rank_reconstruction}; loss {result.clean_loss:.4f} -> "
        f"{result.loss:.4f}. Wrote {args.out}"
    )
    say(format_measures(result.measures))
    return 0


def format_measures(measures: Any) -> str:
    """The threshold-free measures of a reduced hidden state, as one line."""
    spike = measures.massive_activation
    where = f"token {spike.token}" + (f" ({spike.token_text!r})" if spike.token_text is not None else "")
    return (
        f"Participation ratio {measures.participation_ratio:.2f}, effective rank {measures.effective_rank:.2f}; "
        f"largest |activation| {spike.ratio:.1f}x the median, at {where}, dimension {spike.dimension}."
    )


def run_sweep(args: argparse.Namespace) -> int:
    check_outputs(("--out", args.out), ("--csv", args.csv))  # the checks first: they need no torch
    spec = sweep_spec_of(args)
    if args.texts is not None:
        return _run_corpus_sweep(args, spec)
    text, loading = text_of(args), load_spec_of(args)
    if args.plan:
        return print_plan(loading, text)
    from hsviewer.core.analyses.sweep.kind import SWEEP
    from hsviewer.core.analyses.sweep.results import SweepCollector
    from hsviewer.core.analyses.sweep.run import iter_sweep

    handle = load(loading)
    printer, collector = ProgressPrinter(), SweepCollector()
    result = collect(iter_sweep(handle, text, spec), collector, printer, "layers")
    printer.end()
    print_warnings(result.warnings)
    data = result.to_dict()
    _write_json_csv(args, data, lambda: SWEEP.table(result))
    if not result.cancelled:
        save_run_of(not args.no_save, SWEEP.name, handle, result, spec.settings(), [text])
    say(SWEEP.summary(data))
    say(f"Wrote {args.out}")
    return interrupted_code() if result.cancelled else 0


def _run_corpus_sweep(args: argparse.Namespace, spec: Any) -> int:
    """sweep --texts: every text of the corpus swept, then the per-layer aggregate."""
    from hsviewer.core.analyses.corpus.distributed import launched_ranks
    from hsviewer.core.analyses.corpus.texts import read_corpus

    if args.text is not None or args.text_file is not None:
        raise HsviewerError("--texts gives the texts: leave out --text and --text-file.")
    ranks = launched_ranks()  # under torchrun or srun: one of several processes
    corpus = read_corpus(args.texts)
    if ranks is None or ranks.leader:
        for note in corpus.notes:
            print(f"note: {note}", file=sys.stderr)
        print_warnings(corpus.warnings)
    loading = load_spec_of(args)
    if args.plan:
        return print_plan(loading, max((t.text for t in corpus.texts), key=len)) if ranks is None or ranks.leader else 0
    if ranks is not None:
        return _run_corpus_across(args, replace(loading, device=ranks.device(loading.device)), spec, corpus, ranks)
    from hsviewer.core.analyses.corpus.kind import CORPUS
    from hsviewer.core.analyses.corpus.results import CorpusCollector
    from hsviewer.core.analyses.corpus.run import iter_corpus_sweep

    handle = load(loading)
    notes = [*corpus.notes, *corpus.warnings]
    events = iter_corpus_sweep(handle, corpus.texts, spec, source=corpus.source, notes=notes)
    printer, collector = CorpusPrinter(), CorpusCollector()
    result = collect(events, collector, printer, "texts")
    data = result.to_dict()
    _write_json_csv(args, data, lambda: CORPUS.table(result))
    if not result.cancelled:  # as a one-text sweep: only a whole run is kept
        settings = spec.corpus_settings(corpus.source)
        save_run_of(not args.no_save, CORPUS.name, handle, result, settings, [t.text for t in corpus.texts])
    say(CORPUS.summary(data))
    say(f"Wrote {args.out}")
    return interrupted_code() if result.cancelled else 0


def _run_corpus_across(args: argparse.Namespace, loading: Any, spec: Any, corpus: Any, ranks: Any) -> int:
    """sweep --texts as one of several processes, loading as `loading` says (on this rank's device): each
    sweeps its share of the texts; rank 0 alone prints progress, writes the outputs and saves the run, the
    same as one process's but for its world_size. Ctrl+C stops every process and writes nothing."""
    from hsviewer.core.analyses.corpus.distributed import corpus_across_processes, process_group
    from hsviewer.core.analyses.corpus.kind import CORPUS

    printer = CorpusPrinter() if ranks.leader else None
    with process_group(ranks, loading.device or "cpu"):
        handle, result = corpus_across_processes(
            ranks,
            lambda: load(loading, progress=ranks.leader),
            corpus.texts,
            spec,
            source=corpus.source,
            notes=corpus.notes,
            on_event=printer,
        )
    if result is None:
        return 0
    if printer is not None:
        printer.end()
    data = result.to_dict()
    _write_json_csv(args, data, lambda: CORPUS.table(result))
    texts = [t.text for t in corpus.texts]
    settings = spec.corpus_settings(corpus.source)
    save_run_of(not args.no_save, CORPUS.name, handle, result, settings, texts, world_size=ranks.world_size)
    say(CORPUS.summary(data))
    say(f"Wrote {args.out}")
    return 0


def _write_json_csv(args: argparse.Namespace, data: dict[str, Any], rows: Callable[[], Any]) -> None:
    """--out's JSON and, with --csv, the per-layer table: both written or neither."""
    from hsviewer.core.library.writing import csv_writer, json_writer

    writes = [(args.out, json_writer(data))]
    if args.csv:
        writes.append((args.csv, csv_writer(rows())))
    write_outputs(*writes)


def add_image(sub: Any) -> None:
    """image SOURCE: an image's SVD and reconstruction."""
    image = sub.add_parser("image", help="SVD of an image and its low-rank reconstruction")
    image.add_argument("source", help="image file or http(s) URL")
    image.add_argument("--downsample", type=int, default=2, help="keep every Nth pixel (default 2; 1 = none)")
    add_k(image, "--variance", 98.0)
    image.add_argument("--out", required=True, type=path_arg, help="folder for summary.json and PNGs")
    image.set_defaults(run=run_image)


def add_reduce(sub: Any) -> None:
    """reduce: one layer's reduction, then inside the forward pass."""
    reduce = sub.add_parser("reduce", help="reduce one layer's hidden state, then inside the forward pass")
    add_model_text(reduce)
    reduce.add_argument("--layer", type=int, required=True, help="decoder block, 0-based")
    add_reduction(reduce)
    reduce.add_argument("--out", required=True, type=path_arg, help="JSON file")
    add_no_save(reduce)
    reduce.set_defaults(run=run_reduce)


def add_sweep(sub: Any) -> None:
    """sweep: each layer reduced in turn, on one text or a corpus."""
    sweep = sub.add_parser("sweep", help="reduce each layer in turn")
    add_model_text(sweep)
    add_reduction(sweep)
    sweep.add_argument("--grid", help="more thresholds (or k with --components) for a layer x setting grid: 80,90,99")
    sweep.add_argument("--controls", type=controls_arg, default=[], help=f"comma-separated: {CONTROL_SPELLINGS}")
    sweep.add_argument("--method", choices=METHODS, default=METHODS[0], help=argparse.SUPPRESS)
    sweep.add_argument(
        "--texts",
        metavar="PATH",
        help="a corpus: a folder of .txt files, a .txt file (blank-line separated), .jsonl or .csv with a text "
        "column, or 'bundled'; each text swept, the layers aggregated (mean, 95%% interval)",
    )
    sweep.add_argument("--csv", type=path_arg, help="also write the per-layer table as CSV")
    sweep.add_argument("--out", required=True, type=path_arg, help="JSON file")
    add_no_save(
        sweep,
        " A sweep stopped with Ctrl+C or SIGTERM is not saved; --out and --csv keep the layers "
        "(with --texts, the texts) done.",
    )
    sweep.set_defaults(run=run_sweep)
