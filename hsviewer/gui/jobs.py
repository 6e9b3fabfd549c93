"""The jobs the tabs submit: each wraps one of the core's event generators.

hsviewer.core and torch are imported inside the work, on the worker thread, so the
window never waits for them.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from hsviewer.core.library.store import Library
from hsviewer.gui.worker import Job, ModelSlot
from hsviewer.state.model import ModelInfo

if TYPE_CHECKING:
    from hsviewer.core.analyses.intervene.spec import InterveneSpec
    from hsviewer.core.analyses.reduce.spec import ReduceSpec
    from hsviewer.core.analyses.sweep.spec import SweepSpec
    from hsviewer.core.model.load_spec import LoadSpec


def load_model_job(spec: LoadSpec) -> Job:
    """Load the model the spec names into the worker's slot; returns its ModelInfo. A refused or failed
    load leaves the model loaded before in the slot. spec.threads: CPU threads for this and every later
    job on the model's worker (set on its thread, as torch needs); 0: torch's own choice."""

    def work(slot: ModelSlot) -> Generator[Any, None, None]:
        from hsviewer.core.errors import HsviewerError
        from hsviewer.core.events import Finished
        from hsviewer.core.linalg.threads import use_threads
        from hsviewer.core.model.loading import iter_load
        from hsviewer.core.model.memory import MemoryRefused
        from hsviewer.gui.model_options import field_refusal

        use_threads(spec.thread_count)

        try:
            for event in iter_load(spec):
                if isinstance(event, Finished):
                    slot.handle = event.result
                    yield Finished(result=ModelInfo.of(event.result, spec.source))
                else:
                    yield event
        except MemoryRefused as e:  # said with the dialog's fields, not the CLI's flags
            raise HsviewerError(field_refusal(e.plan)) from None

    return Job("model", "Model load", work)


def plan_job(spec: LoadSpec) -> Job:
    """The memory plan a load as the spec says would follow (headers only); returns a MemoryPlan, or None
    when the model's files do not say its size."""

    def work(slot: ModelSlot) -> Generator[Any, None, None]:
        from hsviewer.core.events import Finished
        from hsviewer.core.model.load_plan import plan_load

        yield Finished(result=plan_load(spec))

    return Job("plan", "Memory plan", work, needs_model=False)


def devices_job() -> Job:
    """The devices this machine has (torch asked on the worker); returns [str]."""

    def work(slot: ModelSlot) -> Generator[Any, None, None]:
        from hsviewer.core.choices import available_devices
        from hsviewer.core.events import Finished

        yield Finished(result=available_devices())

    return Job("devices", "Looking for devices", work, needs_model=False)


def cached_models_job(delete: Sequence[str] = (), clear_all: bool = False) -> Job:
    """Delete the converted models named (or all of them), then list what is left; returns the
    cache folder and [CachedModel]."""

    def work(slot: ModelSlot) -> Generator[Any, None, None]:
        from hsviewer.core.events import Finished
        from hsviewer.core.model import gguf_cache

        if clear_all:
            gguf_cache.clear_cached()
        for name in delete:
            gguf_cache.clear_cached(name)
        yield Finished(result=(str(gguf_cache.cache_root()), gguf_cache.list_cached()))

    return Job("cache", "Converted models", work, needs_model=False)


def find_models_job() -> Job:
    """List the models on this machine (headers only; no model needed); returns [FoundModel]."""

    def work(slot: ModelSlot) -> Generator[Any, None, None]:
        from hsviewer.core.model.discovery.scan import iter_find_models

        yield from iter_find_models()

    return Job("models", "Scanning for models", work, needs_model=False)


def image_job(source: str, downsample: int, variance: float) -> Job:
    def work(slot: ModelSlot) -> Generator[Any, None, None]:
        from hsviewer.core.analyses.image.run import image_svd
        from hsviewer.core.events import Finished

        svd = image_svd(source, downsample=downsample, variance=variance)
        svd.preview(1)  # builds the float32 factors here, off the GUI thread
        yield Finished(result=svd)

    return Job("image", "Image SVD", work, needs_model=False)


def hidden_job(text: str, spec: ReduceSpec) -> Job:
    """Reduce one layer; the finished run is saved to the runs library (hashing there, on the worker)."""
    library = Library()

    def work(slot: ModelSlot) -> Generator[Any, None, None]:
        from hsviewer.core.analyses.reduce.kind import REDUCE
        from hsviewer.core.analyses.reduce.run import iter_reduce
        from hsviewer.core.library.provenance import saving

        handle = slot.get()
        events = iter_reduce(handle, text, spec)
        yield from saving(events, handle, kind=REDUCE.name, settings=spec.settings(), texts=[text], library=library)

    return Job("hidden", f"Layer {spec.layer} reduction", work)


def intervene_job(text: str, spec: InterveneSpec) -> Job:
    """Set the spec's layers' massive activations to their mean (or zero); the finished run is saved to the
    runs library."""
    library = Library()

    def work(slot: ModelSlot) -> Generator[Any, None, None]:
        from hsviewer.core.analyses.intervene.kind import INTERVENE
        from hsviewer.core.analyses.intervene.run import iter_intervene
        from hsviewer.core.library.provenance import saving

        handle = slot.get()
        events = iter_intervene(handle, text, spec)
        yield from saving(events, handle, kind=INTERVENE.name, settings=spec.settings(), texts=[text], library=library)

    return Job("intervene", f"Layer {spec.layers} intervention", work)


def sweep_job(text: str, spec: SweepSpec) -> Job:
    """Reduce each layer in turn; a sweep that ends is saved to the runs library (a cancelled one is not)."""
    library = Library()

    def work(slot: ModelSlot) -> Generator[Any, None, None]:
        from hsviewer.core.analyses.sweep.kind import SWEEP
        from hsviewer.core.analyses.sweep.run import iter_sweep
        from hsviewer.core.library.provenance import saving

        handle = slot.get()
        events = iter_sweep(handle, text, spec)
        yield from saving(events, handle, kind=SWEEP.name, settings=spec.settings(), texts=[text], library=library)

    return Job("sweep", "Layer sweep", work)


def corpus_job(source: str, spec: SweepSpec) -> Job:
    """Read the corpus at `source` ("bundled", a file or folder) and sweep each text; returns a CorpusResult.
    A corpus sweep that ends is saved to the runs library (a cancelled one is not, as a sweep)."""
    library = Library()

    def work(slot: ModelSlot) -> Generator[Any, None, None]:
        from hsviewer.core.analyses.corpus.kind import CORPUS
        from hsviewer.core.analyses.corpus.run import iter_corpus_sweep
        from hsviewer.core.analyses.corpus.texts import read_corpus
        from hsviewer.core.library.provenance import saving

        handle = slot.get()
        corpus = read_corpus(source)
        settings = spec.corpus_settings(corpus.source)
        notes = [*corpus.notes, *corpus.warnings]
        events = iter_corpus_sweep(handle, corpus.texts, spec, source=corpus.source, notes=notes)
        texts = [t.text for t in corpus.texts]
        yield from saving(events, handle, kind=CORPUS.name, settings=settings, texts=texts, library=library)

    return Job("sweep", "Corpus sweep", work)
