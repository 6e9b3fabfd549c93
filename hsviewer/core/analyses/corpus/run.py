"""A layer sweep on each text of a corpus, aggregated per layer (mean and 95% interval over texts).

Each text runs iter_sweep as it is (layers batched on CUDA); its events pass through, framed
by TextStarted and TextDone. A text the sweep refuses (one token, say) is skipped with a note
and the rest run. Stop iterating to cancel: a CorpusCollector keeps the texts done.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING

from hsviewer.core.analyses.corpus.results import (
    CorpusCollector,
    CorpusEvent,
    CorpusResult,
    CorpusStarted,
    TextDone,
    TextSkipped,
    TextStarted,
)
from hsviewer.core.analyses.corpus.texts import CorpusText
from hsviewer.core.analyses.sweep.run import iter_sweep
from hsviewer.core.analyses.sweep.spec import SweepSpec
from hsviewer.core.choices import control_labels
from hsviewer.core.errors import HsviewerError
from hsviewer.core.events import Finished

if TYPE_CHECKING:
    from hsviewer.core.model.loading import ModelHandle


def iter_corpus_sweep(
    handle: ModelHandle,
    texts: Sequence[CorpusText],
    spec: SweepSpec | None = None,
    *,
    source: str = "",
    notes: Sequence[str] = (),
) -> Generator[CorpusEvent, None, None]:
    """iter_sweep(spec) on each text in turn, then Finished(CorpusResult); a text it refuses is skipped.

    notes: what reading the corpus left out, kept at the head of the result's notes.
    """
    spec = spec or SweepSpec()
    if not texts:
        raise HsviewerError("The corpus holds no texts.")
    collector = CorpusCollector()
    started = CorpusStarted(
        run=CorpusResult(
            model=handle.name,
            n_layers=handle.n_layers,
            hidden_size=handle.hidden_size,
            reduction=spec.reduction,
            source=source,
            controls=control_labels(spec.controls),  # as the texts' runs are keyed: exclude_massive:100
            notes=list(notes),
        )
    )
    collector.add(started)
    yield started
    for index, text in enumerate(texts):
        yield TextStarted(index=index, total=len(texts), name=text.name)
        sweep = iter_sweep(handle, text.text, spec)
        event: CorpusEvent
        try:
            for inner in sweep:
                if isinstance(inner, Finished):
                    event = TextDone(index=index, total=len(texts), name=text.name, result=inner.result)
                    collector.add(event)
                    yield event
                else:
                    yield inner
        except HsviewerError as e:
            event = TextSkipped(index=index, name=text.name, reason=str(e))
            collector.add(event)
            yield event
        finally:
            sweep.close()
    result = collector.result
    assert result is not None  # CorpusStarted came first
    if not result.texts:
        skipped = result.notes[len(notes) :]
        raise HsviewerError(f"No text of the corpus could be swept ({len(skipped)} skipped): {skipped[0]}")
    yield Finished(result=result)
