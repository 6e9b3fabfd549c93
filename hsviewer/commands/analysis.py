"""The analysis commands: image, reduce and sweep (one text or a corpus), and their tables as text."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from hsviewer.cli import (
    _check_outputs,
    _CorpusPrinter,
    _load,
    _print_plan,
    _print_warnings,
    _ProgressPrinter,
    _reduction,
    _save_run,
    _text,
    _write,
    say,
)
from hsviewer.core.errors import HsviewerError


def run_image(args: argparse.Namespace) -> int:
    from hsviewer.core import image_svd
    from hsviewer.export import gray_png_writer, json_writer
    from hsviewer.render import spectrum_png

    out = args.out
    if out.exists() and not out.is_dir():
        raise HsviewerError(f"--out {out} is a file; it names the folder for summary.json and the PNGs.")
    result = image_svd(args.source, args.downsample, args.components, args.variance)
    for note in result.warnings:
        print(f"note: {note}", file=sys.stderr)
    _write(
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
    _check_outputs(("--out", args.out))  # the checks first: they need no torch
    reduction, text = _reduction(args), _text(args)
    if args.plan:
        return _print_plan(args, text)
    from hsviewer.core import reduce_layer
    from hsviewer.core.provenance import reduction_settings
    from hsviewer.export import json_writer

    handle = _load(args)
    result = reduce_layer(handle, text, args.layer, reduction)
    _print_warnings(result.warnings)
    _write((args.out, json_writer(result.to_dict())))
    _save_run(args, "reduce", handle, result, {"layer": args.layer, "reduction": reduction_settings(reduction)}, [text])
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
    from hsviewer.core.grid import parse_grid
    from hsviewer.core.provenance import sweep_settings

    _check_outputs(("--out", args.out), ("--csv", args.csv))  # the checks first: they need no torch
    reduction = _reduction(args)
    grid = parse_grid(args.grid or "", reduction)
    if args.texts is not None:
        return _run_corpus_sweep(args, reduction, grid)
    text = _text(args)
    if args.plan:
        return _print_plan(args, text)
    from hsviewer.core import iter_sweep
    from hsviewer.core.events import run_to_end
    from hsviewer.export import sweep_rows

    handle = _load(args)
    events = iter_sweep(handle, text, reduction, method=args.method, grid=grid, controls=args.controls)
    printer = _ProgressPrinter()
    result = run_to_end(events, printer)
    printer.end()
    _print_warnings(result.warnings)
    data = result.to_dict()
    _write_json_csv(args, data, lambda: sweep_rows(result))
    if not result.cancelled:
        _save_run(args, "sweep", handle, result, sweep_settings(reduction, grid, args.controls, args.method), [text])
    say(format_sweep_table(data))
    say(f"Wrote {args.out}")
    return 0


def _run_corpus_sweep(args: argparse.Namespace, reduction: Any, grid: list[Any]) -> int:
    """sweep --texts: every text of the corpus swept, then the per-layer aggregate."""
    from hsviewer.core.corpus import read_corpus
    from hsviewer.core.distributed import launched_ranks
    from hsviewer.core.provenance import sweep_settings

    if args.text is not None or args.text_file is not None:
        raise HsviewerError("--texts gives the texts: leave out --text and --text-file.")
    ranks = launched_ranks()  # under torchrun or srun: one of several processes
    corpus = read_corpus(args.texts)
    if ranks is None or ranks.leader:
        for note in corpus.notes:
            print(f"note: {note}", file=sys.stderr)
    if args.plan:
        return _print_plan(args, max((t.text for t in corpus.texts), key=len)) if ranks is None or ranks.leader else 0
    if ranks is not None:
        return _run_corpus_across(args, reduction, grid, corpus, ranks)
    from hsviewer.core.corpus_results import CorpusCollector, aggregate_rows
    from hsviewer.core.corpus_sweep import iter_corpus_sweep
    from hsviewer.core.events import run_to_end

    handle = _load(args)
    events = iter_corpus_sweep(
        handle,
        corpus.texts,
        reduction,
        source=corpus.source,
        method=args.method,
        grid=grid,
        controls=args.controls,
        notes=corpus.notes,
    )
    printer, collector = _CorpusPrinter(), CorpusCollector()
    try:
        result = run_to_end(events, lambda event: (printer(event), collector.add(event)))
    except KeyboardInterrupt:  # Ctrl+C keeps the texts done
        events.close()
        result = collector.cancelled()
        if result is None or not result.texts:
            raise
        n = len(result.texts)
        done = f"{n} text{'s' * (n != 1)} done"
        print(f"\nhsviewer: interrupted; writing the {done} (not saved to the runs library)", file=sys.stderr)
    data = result.to_dict()
    _write_json_csv(args, data, lambda: aggregate_rows(data))
    if not result.cancelled:  # as a one-text sweep: only a whole run is kept
        settings = sweep_settings(reduction, grid, args.controls, args.method) | {"source": corpus.source}
        _save_run(args, "corpus", handle, result, settings, [t.text for t in corpus.texts])
    say(format_aggregate_table(data))
    say(f"Wrote {args.out}")
    return 130 if result.cancelled else 0


def _run_corpus_across(args: argparse.Namespace, reduction: Any, grid: list[Any], corpus: Any, ranks: Any) -> int:
    """sweep --texts as one of several processes: each sweeps its share of the texts; rank 0
    alone prints progress, writes the outputs and saves the run, the same as one process's
    but for its world_size. Ctrl+C stops every process and writes nothing."""
    from hsviewer.core.corpus_results import aggregate_rows
    from hsviewer.core.distributed import corpus_across_processes, process_group
    from hsviewer.core.provenance import sweep_settings

    args.device = ranks.device(args.device)
    printer = _CorpusPrinter() if ranks.leader else None
    with process_group(ranks, args.device or "cpu"):
        handle, result = corpus_across_processes(
            ranks,
            lambda: _load(args, progress=ranks.leader),
            corpus.texts,
            reduction,
            source=corpus.source,
            method=args.method,
            grid=grid,
            controls=args.controls,
            notes=corpus.notes,
            on_event=printer,
        )
    if result is None:
        return 0
    if printer is not None:
        printer.end()
    data = result.to_dict()
    _write_json_csv(args, data, lambda: aggregate_rows(data))
    settings = sweep_settings(reduction, grid, args.controls, args.method) | {"source": corpus.source}
    texts = [t.text for t in corpus.texts]
    _save_run(args, "corpus", handle, result, settings, texts, world_size=ranks.world_size)
    say(format_aggregate_table(data))
    say(f"Wrote {args.out}")
    return 0


def _write_json_csv(args: argparse.Namespace, data: dict[str, Any], rows: Callable[[], Any]) -> None:
    """--out's JSON and, with --csv, the per-layer table: both written or neither."""
    from hsviewer.export import csv_writer, json_writer

    writes = [(args.out, json_writer(data))]
    if args.csv:
        writes.append((args.csv, csv_writer(rows())))
    _write(*writes)


def format_aggregate_table(data: dict[str, Any]) -> str:
    """Per layer: the mean and 95% interval over the texts of components, loss change and KL."""
    n = len(data["texts"])
    lines = [f"{data['model']}: {n} texts swept, mean [95% interval] over texts"]
    for note in data["notes"]:
        lines.append(f"  {note}")
    runs = {"": data["aggregate"], **data["aggregate"].get("controls", {})}
    for run, agg in runs.items():
        if run:
            lines.append(f"control {run}:")
        lines.append(f"{'layer':>5} {'components':>22} {'% of rank':>20} {'loss change':>26} {'KL':>26}")
        for r in agg["layers"]:
            lines.append(
                f"{r['layer']:>5} {_interval(r, 'components', '.1f'):>22} "
                f"{_interval(r, 'components_percent', '.1f'):>20} "
                f"{_interval(r, 'loss_change', '.4f'):>26} {_interval(r, 'kl', '.4f'):>26}"
            )
    if data.get("cancelled"):
        lines.append("(cancelled: the texts above are all that ran)")
    return "\n".join(lines)


def _interval(row: dict[str, Any], name: str, spec: str) -> str:
    mean, ci = row[f"{name}_mean"], row[f"{name}_ci95"]
    return f"{mean:{spec}}" + (f" [{ci[0]:{spec}}, {ci[1]:{spec}}]" if ci is not None else "")


def format_sweep_table(data: dict[str, Any]) -> str:
    """The per-layer table the notebook plots, as text."""
    lines = [
        f"{data['model']}: {len(data['tokens'])} tokens, clean loss {data['clean_loss']:.4f}",
        f"{'layer':>5} {'comps':>5} {'var %':>7} {'hs diff':>10} {'logit diff':>11} {'loss':>8} {'KL':>8}",
    ]
    for r in data["layers"]:
        lines.append(
            f"{r['layer']:>5} {r['components']:>5} {r['variance_kept']:>7.2f} {r['hidden_diff_norm']:>10.2f} "
            f"{r['logit_diff_norm']:>11.2f} {r['loss']:>8.4f} {r['kl_divergence']:>8.4f}"
        )
    if data.get("cancelled"):
        lines.append("(cancelled: the layers above are all that ran)")
    return "\n".join(lines)
