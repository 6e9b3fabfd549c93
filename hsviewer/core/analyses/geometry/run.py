"""Per text, two clean forward passes (the tokens as written, then shuffled) and the geometry of every
block's output: no reduction, no loss, so a corpus of the default model takes a minute, not a sweep's hour.

Measured at each block: anisotropy of the double-centred hidden state (the default Reduction's
centring), with every token and with the basis built from rows[1:]; the massive-activation ratio and
the normalised prompt entropy of the raw hidden state; TwoNN of the raw tokens, as written and
shuffled (passes.text.shuffled: the same order a sweep's shuffled control uses for that seed). A text
the tokenizer refuses (one token) is skipped with a note. Stop iterating to cancel: a
GeometryCollector keeps the texts done.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from hsviewer.core.analyses.corpus.results import TextSkipped, TextStarted
from hsviewer.core.analyses.corpus.texts import CorpusText
from hsviewer.core.analyses.geometry.results import (
    GeometryCollector,
    GeometryEvent,
    GeometryResult,
    GeometryStarted,
    GeometryTextDone,
    LayerGeometry,
    TextGeometry,
)
from hsviewer.core.errors import HsviewerError
from hsviewer.core.events import Finished
from hsviewer.core.linalg.geometry import anisotropy, prompt_entropy, twonn_dimension
from hsviewer.core.linalg.measures import finite_or_none, massive_activation
from hsviewer.core.linalg.reduction import Reduction, decompose
from hsviewer.core.model.anatomy import block_hidden
from hsviewer.core.passes.clean import clean_forward, first_row
from hsviewer.core.passes.text import Tokens, shuffled, tokenize

if TYPE_CHECKING:
    import torch

    from hsviewer.core.model.loading import ModelHandle

ALL_TOKENS = Reduction()  # double centring, every row: the sweep's default basis
WITHOUT_FIRST = Reduction(exclude_first=1)  # the same, the first token left out


def iter_reproduction(
    handle: ModelHandle,
    texts: Sequence[CorpusText],
    *,
    source: str = "",
    seed: int = 0,
    notes: Sequence[str] = (),
) -> Generator[GeometryEvent, None, None]:
    """Each text's geometry in turn (TextStarted, then GeometryTextDone or TextSkipped), then
    Finished(GeometryResult). notes: what reading the corpus left out, kept at the head of the result's."""
    if not texts:
        raise HsviewerError("The corpus holds no texts.")
    collector = GeometryCollector()
    run = GeometryResult(
        model=handle.name,
        n_layers=handle.n_layers,
        hidden_size=handle.hidden_size,
        source=source,
        seed=seed,
        notes=list(notes),
    )
    started = GeometryStarted(run=run)
    collector.add(started)
    yield started
    for index, text in enumerate(texts):
        yield TextStarted(index=index, total=len(texts), name=text.name)
        event: GeometryEvent
        try:
            event = GeometryTextDone(index=index, total=len(texts), result=text_geometry(handle, text, seed))
        except HsviewerError as e:
            event = TextSkipped(index=index, name=text.name, reason=str(e))
        collector.add(event)
        yield event
    result = collector.result
    assert result is not None  # GeometryStarted came first
    if not result.texts:
        skipped = result.notes[len(notes) :]
        raise HsviewerError(f"No text of the corpus could be read ({len(skipped)} skipped): {skipped[0]}")
    yield Finished(result=result)


def text_geometry(handle: ModelHandle, text: CorpusText, seed: int) -> TextGeometry:
    """One text's measures at every block, from its clean pass and its shuffled clean pass."""
    tokens = tokenize(handle, text.text)
    handle.check_memory(len(tokens))
    plain = block_outputs(handle, tokens)
    mixed = block_outputs(handle, shuffled(tokens, seed))
    layers = [layer_geometry(layer, plain[layer], mixed[layer]) for layer in range(handle.n_layers)]
    return TextGeometry(name=text.name, tokens=len(tokens), layers=layers)


def block_outputs(handle: ModelHandle, tokens: Tokens) -> list[torch.Tensor]:
    """Each block's (T, D) float32 hidden state in one clean pass, as the sweep reads it."""
    clean = clean_forward(handle, tokens.ids, raw=True)
    return [first_row(block_hidden(clean.hidden[layer])) for layer in range(handle.n_layers)]


def layer_geometry(layer: int, hidden: torch.Tensor, shuffled_hidden: torch.Tensor) -> LayerGeometry:
    raw, mixed = (x.detach().to("cpu").double().numpy() for x in (hidden, shuffled_hidden))
    return LayerGeometry(
        layer=layer,
        anisotropy=top_share(hidden, ALL_TOKENS),
        anisotropy_without_first=top_share(hidden, WITHOUT_FIRST),
        massive_ratio=finite_or_none(massive_activation(raw).ratio),
        twonn_dimension=twonn_dimension(raw),
        twonn_dimension_shuffled=twonn_dimension(mixed),
        prompt_entropy_normalised=prompt_entropy(raw).normalised,
    )


def top_share(hidden: torch.Tensor, reduction: Reduction) -> float | None:
    """The anisotropy of the rows the reduction's basis is built from, centred as it centres them
    (the spectrum a sweep's measures read); None with no variance (one row left, say)."""
    s = decompose(hidden, reduction).s.detach().to("cpu").double().numpy()
    return anisotropy(s) if bool(np.any(s > 0)) else None
