"""The work the worker threads do: each function returns a job that calls hsviewer.core.

hsviewer.core and torch are imported inside the jobs, on the worker thread, so the
window never waits for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hsviewer.gui.worker import JobContext

JobFn = Callable[[JobContext], Any]


@dataclass
class ModelInfo:
    """What the GUI needs to know about the loaded model (the model itself stays in the worker)."""

    source: str
    name: str
    n_layers: int
    hidden_size: int
    device: str
    licence: str


@dataclass
class ImageResult:
    svd: Any  # hsviewer.core.ImageSVD


@dataclass
class SweepStart:
    """Sent before the first layer so the panels can be laid out and the clean loss drawn."""

    tokens: list[str]
    clean_loss: float
    n_layers: int
    hidden_size: int
    runs: list[str]  # "" for the plain sweep, then the controls
    grid_labels: list[str]


@dataclass
class SweepLayer:
    label: str  # "" for the plain sweep, else the control's name
    done: int
    total: int
    layer: Any  # hsviewer.core.LayerResult


def load_model_job(source: str) -> JobFn:
    def run(ctx: JobContext) -> ModelInfo:
        from hsviewer.core import load_model

        def report(message: str) -> None:
            ctx.progress(0, 0, message)
            ctx.check_cancelled()

        report(f"Loading model {source}")
        handle = load_model(source, progress=report)
        ctx.set_model(handle)
        size = _hidden_size(handle)
        return ModelInfo(source, handle.name, handle.n_layers, size, str(handle.device), licence(source))

    return run


def image_job(source: str, downsample: int, variance: float) -> JobFn:
    def run(ctx: JobContext) -> ImageResult:
        from hsviewer.core import image_svd

        ctx.progress(0, 0, f"SVD of {Path(source).name or source}")
        svd = image_svd(source, downsample=downsample, variance=variance)
        svd.preview(1)  # builds the float32 factors here, off the GUI thread
        return ImageResult(svd)

    return run


def hidden_job(text: str, layer: int, reduction: Any) -> JobFn:
    def run(ctx: JobContext) -> Any:
        from hsviewer.core import reduce_layer

        handle = ctx.model
        ctx.progress(0, 0, f"Reducing layer {layer} and applying it in the forward pass")
        return reduce_layer(handle, text, layer, reduction)

    return run


def sweep_job(text: str, reduction: Any, grid: Sequence[Any], controls: Sequence[str]) -> JobFn:
    def run(ctx: JobContext) -> Any:
        from hsviewer.core import layer_sweep

        handle = ctx.model
        ctx.progress(0, 0, "Clean forward pass")
        runs = ["", *controls]
        labels = [g.label() for g in grid]

        def started(label: str, result: Any) -> None:
            if not label:  # the plain sweep lays out the panels; controls only add curves
                size = _hidden_size(handle)
                ctx.partial(SweepStart(result.tokens, result.clean_loss, handle.n_layers, size, runs, labels))

        def progress(done: int, total: int, label: str, layer: Any) -> None:
            ctx.partial(SweepLayer(label, done, total, layer))
            ctx.progress(done, total, f"Sweep{' (' + label + ')' if label else ''}: layer {layer.layer} done")

        return layer_sweep(
            handle,
            text,
            reduction,
            grid=list(grid),
            controls=list(controls),
            progress=progress,
            cancel=ctx.cancelled,
            started=started,
        )

    return run


def _hidden_size(handle: Any) -> int:
    return int(handle.model.get_input_embeddings().weight.shape[1])


def licence(source: str) -> str:
    """The model's licence as its files state it, or a pointer to where to look."""
    from hsviewer.core.models import DEFAULT_DESCRIPTION, DEFAULT_MODEL

    if source == DEFAULT_MODEL:
        return DEFAULT_DESCRIPTION
    readme = Path(source).expanduser() / "README.md"
    if readme.is_file():
        for line in readme.read_text(encoding="utf-8", errors="replace").splitlines()[:40]:
            if line.lower().startswith("license:"):
                return line.split(":", 1)[1].strip()
    return "not stated in the model's files: see its model card"
