"""The jobs the tabs submit: each wraps one of the core's event generators.

hsviewer.core and torch are imported inside the work, on the worker thread, so the
window never waits for them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hsviewer.gui.worker import Job, ModelSlot

if TYPE_CHECKING:
    from hsviewer.core.models import ModelHandle
    from hsviewer.core.reduction import Reduction


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What the GUI needs to know about the loaded model (the model itself stays in the worker)."""

    source: str
    name: str
    n_layers: int
    hidden_size: int
    device: str
    licence: str

    @classmethod
    def of(cls, handle: ModelHandle, source: str) -> ModelInfo:
        return cls(
            source=source,
            name=handle.name,
            n_layers=handle.n_layers,
            hidden_size=handle.hidden_size,
            device=str(handle.device),
            licence=licence(source),
        )


def load_model_job(source: str) -> Job:
    """Load a model into the worker's slot; returns its ModelInfo."""

    def work(slot: ModelSlot) -> Iterator[Any]:
        from hsviewer.core.events import Finished
        from hsviewer.core.models import iter_load

        for event in iter_load(source):
            if isinstance(event, Finished):
                slot.handle = event.result
                yield Finished(result=ModelInfo.of(event.result, source))
            else:
                yield event

    return Job("model", "Model load", work)


def find_models_job() -> Job:
    """List the models on this machine (headers only; no model needed); returns [FoundModel]."""

    def work(slot: ModelSlot) -> Iterator[Any]:
        from hsviewer.core.discovery import iter_find_models

        yield from iter_find_models()

    return Job("models", "Scanning for models", work, needs_model=False)


def image_job(source: str, downsample: int, variance: float) -> Job:
    def work(slot: ModelSlot) -> Iterator[Any]:
        from hsviewer.core.events import Finished
        from hsviewer.core.image import image_svd

        svd = image_svd(source, downsample=downsample, variance=variance)
        svd.preview(1)  # builds the float32 factors here, off the GUI thread
        yield Finished(result=svd)

    return Job("image", "Image SVD", work, needs_model=False)


def hidden_job(text: str, layer: int, reduction: Reduction) -> Job:
    def work(slot: ModelSlot) -> Iterator[Any]:
        from hsviewer.core.hidden import iter_reduce

        yield from iter_reduce(slot.get(), text, layer, reduction)

    return Job("hidden", f"Layer {layer} reduction", work)


def sweep_job(text: str, reduction: Reduction, grid: Sequence[Reduction], controls: Sequence[str]) -> Job:
    def work(slot: ModelSlot) -> Iterator[Any]:
        from hsviewer.core.sweep import iter_sweep

        yield from iter_sweep(slot.get(), text, reduction, grid=list(grid), controls=list(controls))

    return Job("sweep", "Layer sweep", work)


def corpus_job(source: str, reduction: Reduction, grid: Sequence[Reduction], controls: Sequence[str]) -> Job:
    """Read the corpus at `source` ("bundled", a file or folder) and sweep each text; returns a CorpusResult."""

    def work(slot: ModelSlot) -> Iterator[Any]:
        from hsviewer.core.corpus import read_corpus
        from hsviewer.core.corpus_sweep import iter_corpus_sweep

        corpus = read_corpus(source)
        yield from iter_corpus_sweep(
            slot.get(), corpus.texts, reduction, source=corpus.source, grid=grid, controls=controls, notes=corpus.notes
        )

    return Job("sweep", "Corpus sweep", work)


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
