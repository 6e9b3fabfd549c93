"""The `hsviewer` command: the GUI with no subcommand, headless analyses with one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hsviewer import __version__
from hsviewer._frozen import fix_std_streams
from hsviewer.core.errors import HsviewerError

EXIT_BAD_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    """Parse, run, and turn HsviewerError into one line on stderr and exit code 2."""
    fix_std_streams()
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except HsviewerError as e:
        print(f"hsviewer: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:  # an output that cannot be written: a file where a folder goes, a full disk
        where = f" {e.filename}" if e.filename else ""
        print(f"hsviewer: error: Could not write{where}: {e.strerror or e}.", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("hsviewer: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hsviewer", description="How much of a language model's hidden state survives dimensionality reduction."
    )
    parser.add_argument("--version", action="version", version=f"hsviewer {__version__}")
    parser.add_argument("--model", default=None, help="model for the GUI: default, a folder, a .gguf file or a hub id")
    parser.add_argument("--screenshots", metavar="DIR", help="run the default analyses, save one PNG per tab, exit")
    parser.add_argument("--selftest", action="store_true", help="a quick headless check of image SVD and the model")
    parser.set_defaults(run=_run_gui)
    sub = parser.add_subparsers(title="commands", metavar="{image,reduce,sweep,bench}")

    image = sub.add_parser("image", help="SVD of an image and its low-rank reconstruction")
    image.add_argument("source", help="image file or http(s) URL")
    image.add_argument("--downsample", type=int, default=2, help="keep every Nth pixel (default 2; 1 = none)")
    _add_k(image, "--variance", 98.0)
    image.add_argument("--out", required=True, type=Path, help="folder for summary.json and PNGs")
    image.set_defaults(run=_run_image)

    reduce = sub.add_parser("reduce", help="reduce one layer's hidden state, then inside the forward pass")
    _add_model_text(reduce)
    reduce.add_argument("--layer", type=int, required=True, help="decoder block, 0-based")
    _add_reduction(reduce)
    reduce.add_argument("--out", required=True, type=Path, help="JSON file")
    reduce.set_defaults(run=_run_reduce)

    sweep = sub.add_parser("sweep", help="reduce each layer in turn")
    _add_model_text(sweep)
    _add_reduction(sweep)
    sweep.add_argument("--grid", help="more thresholds (or k with --components) for a layer x setting grid: 80,90,99")
    sweep.add_argument("--controls", help="comma-separated: exclude_first, random, shuffled")
    sweep.add_argument("--method", choices=("prefix", "hooks"), default="prefix", help=argparse.SUPPRESS)
    sweep.add_argument("--csv", type=Path, help="also write the per-layer table as CSV")
    sweep.add_argument("--out", required=True, type=Path, help="JSON file")
    sweep.set_defaults(run=_run_sweep)

    bench = sub.add_parser("bench", help="benchmarks: sweep speed, load time, image latency, memory, GUI stalls")
    _add_model_text(bench)
    bench.add_argument("--skip-gui", action="store_true", help="leave out the GUI event-loop probe")
    bench.set_defaults(run=_run_bench)
    return parser


def _add_k(parser: argparse.ArgumentParser, percent_flag: str, default: float) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(percent_flag, type=float, help=f"percent of variance to keep (default {default:g})")
    group.add_argument("--components", type=int, help="keep exactly K components")


def _add_model_text(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="default, a model folder, a .gguf file or a hub id")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--text-file", type=Path, help="UTF-8 text file (default: the bundled Stedelijk paragraph)")
    group.add_argument("--text", help="the text itself")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--device-map", choices=("auto",), help="spread a large model over devices (accelerate)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow a model's own code to run")


def _add_reduction(parser: argparse.ArgumentParser) -> None:
    _add_k(parser, "--threshold", 95.0)
    parser.add_argument("--centering", choices=("double", "column", "none"), default="double")
    parser.add_argument("--exclude-first", action="store_true", help="build the basis without the first token")
    parser.add_argument("--random-basis", action="store_true", help="a random subspace of the same rank (control)")


def _reduction(args: argparse.Namespace) -> Any:
    from hsviewer.core import Reduction

    return Reduction(
        threshold=95.0 if args.threshold is None else args.threshold,
        components=args.components,
        centering=args.centering,
        exclude_first=args.exclude_first,
        basis="random" if args.random_basis else "top",
    )


def _text(args: argparse.Namespace) -> str:
    from hsviewer.core import read_text_file
    from hsviewer.resources import default_text

    if args.text is not None:
        return args.text
    return read_text_file(args.text_file) if args.text_file else default_text()


def _load(args: argparse.Namespace) -> Any:
    from hsviewer.core import load_model

    return load_model(
        args.model,
        device=args.device,
        device_map=args.device_map,
        trust_remote_code=args.trust_remote_code,
        on_event=_ProgressPrinter(),
    )


class _ProgressPrinter:
    """On stderr: each step a line; a run's layers counted on one line, ended by whatever comes next."""

    def __init__(self) -> None:
        self.counting = False

    def __call__(self, event: Any) -> None:
        from hsviewer.core.events import Progress
        from hsviewer.core.sweep_results import LayerDone

        if isinstance(event, LayerDone):
            print(f"\r{event.label or 'sweep'}: {event.done}/{event.total}", end="", file=sys.stderr, flush=True)
        elif self.counting:
            print(file=sys.stderr)
        if isinstance(event, Progress):
            print(event.message, file=sys.stderr)
        self.counting = isinstance(event, LayerDone)


def _run_gui(args: argparse.Namespace) -> int:
    if args.selftest:
        from hsviewer.selftest import selftest

        return selftest()
    from hsviewer.gui.app import main as gui_main

    return gui_main(screenshots=args.screenshots, model=args.model)


def _run_image(args: argparse.Namespace) -> int:
    from hsviewer.core import image_svd
    from hsviewer.export import write_gray_png, write_json
    from hsviewer.render import spectrum_png

    result = image_svd(args.source, args.downsample, args.components, args.variance)
    for note in result.warnings:
        print(f"note: {note}", file=sys.stderr)
    out = args.out
    write_gray_png(out / "original.png", result.image)
    write_gray_png(out / "reconstruction.png", result.reconstruction())
    spectrum_png(out / "spectrum.png", result.s, result.cumulative_percent, result.components)
    write_json(out / "summary.json", result.to_dict())
    print(
        f"{result.image.shape[0]} x {result.image.shape[1]} image, rank {result.rank}: "
        f"{result.components} components keep {result.variance_kept():.2f}% of the variance, "
        f"Frobenius error {result.frobenius_error():.4g}. Wrote {out}/"
    )
    return 0


def _run_reduce(args: argparse.Namespace) -> int:
    from hsviewer.core import reduce_layer
    from hsviewer.export import write_json

    reduction, text = _reduction(args), _text(args)
    result = reduce_layer(_load(args), text, args.layer, reduction)
    _print_warnings(result.warnings)
    write_json(args.out, result.to_dict())
    print(
        f"Layer {result.layer}: {result.components} of {len(result.s)} components keep "
        f"{result.variance_kept:.2f}% of the variance; correlation {result.correlation:.5f}; "
        f"rank {result.rank_original} -> {result.rank_reconstruction}; loss {result.clean_loss:.4f} -> "
        f"{result.loss:.4f}. Wrote {args.out}"
    )
    return 0


def _run_sweep(args: argparse.Namespace) -> int:
    from hsviewer.core import iter_sweep
    from hsviewer.core.events import run_to_end
    from hsviewer.export import sweep_rows, write_csv, write_json

    reduction, text = _reduction(args), _text(args)
    grid = _grid(args.grid, reduction)
    controls = [c.strip() for c in args.controls.split(",") if c.strip()] if args.controls else []
    handle = _load(args)
    events = iter_sweep(handle, text, reduction, method=args.method, grid=grid, controls=controls)
    result = run_to_end(events, _ProgressPrinter())
    _print_warnings(result.warnings)
    data = result.to_dict()
    write_json(args.out, data)
    if args.csv:
        write_csv(args.csv, sweep_rows(result))
    print(format_sweep_table(data))
    print(f"Wrote {args.out}")
    return 0


def _grid(spec: str | None, reduction: Any) -> list[Any]:
    if not spec:
        return []
    from dataclasses import replace

    try:
        values = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise HsviewerError(f"--grid takes comma-separated numbers; got {spec!r}.") from None
    if reduction.components is not None:
        return [replace(reduction, components=int(v)) for v in values]
    return [replace(reduction, threshold=v) for v in values]


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


def _run_bench(args: argparse.Namespace) -> int:
    from hsviewer.bench import run_bench

    return run_bench(args.model, _text(args), with_gui=not args.skip_gui)


def _print_warnings(warnings: list[str]) -> None:
    for note in warnings:
        print(f"warning: {note}", file=sys.stderr)
