"""The Qt-free core: every number hsviewer shows is computed here.

Names are exported lazily (PEP 562): `import hsviewer.core` stays cheap, and the modules
themselves import torch at the top, where their annotations need it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "CorpusResult": "analyses.corpus.results",
    "DEFAULT_MODEL": "model.default",
    "HiddenReduction": "analyses.reduce.results",
    "HsviewerError": "errors",
    "ImageSVD": "analyses.image.run",
    "InterventionResult": "analyses.intervene.results",
    "InterveneSpec": "analyses.intervene.spec",
    "LayerResult": "analyses.sweep.results",
    "LoadSpec": "model.load_spec",
    "ModelHandle": "model.loading",
    "ReduceSpec": "analyses.reduce.spec",
    "Reduction": "linalg.reduction",
    "SweepResult": "analyses.sweep.results",
    "SweepSpec": "analyses.sweep.spec",
    "image_svd": "analyses.image.run",
    "intervene": "analyses.intervene.run",
    "iter_corpus_sweep": "analyses.corpus.run",
    "iter_intervene": "analyses.intervene.run",
    "iter_sweep": "analyses.sweep.run",
    "layer_sweep": "analyses.sweep.run",
    "load_image": "analyses.image.run",
    "load_model": "model.loading",
    "read_corpus": "analyses.corpus.texts",
    "read_text_file": "passes.text",
    "reduce_layer": "analyses.reduce.run",
}

__all__ = [
    "DEFAULT_MODEL",
    "CorpusResult",
    "HiddenReduction",
    "HsviewerError",
    "ImageSVD",
    "InterveneSpec",
    "InterventionResult",
    "LayerResult",
    "LoadSpec",
    "ModelHandle",
    "ReduceSpec",
    "Reduction",
    "SweepResult",
    "SweepSpec",
    "image_svd",
    "intervene",
    "iter_corpus_sweep",
    "iter_intervene",
    "iter_sweep",
    "layer_sweep",
    "load_image",
    "load_model",
    "read_corpus",
    "read_text_file",
    "reduce_layer",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from hsviewer.core.analyses.corpus.results import CorpusResult
    from hsviewer.core.analyses.corpus.run import iter_corpus_sweep
    from hsviewer.core.analyses.corpus.texts import read_corpus
    from hsviewer.core.analyses.image.run import ImageSVD, image_svd, load_image
    from hsviewer.core.analyses.intervene.results import InterventionResult
    from hsviewer.core.analyses.intervene.run import intervene, iter_intervene
    from hsviewer.core.analyses.intervene.spec import InterveneSpec
    from hsviewer.core.analyses.reduce.results import HiddenReduction
    from hsviewer.core.analyses.reduce.run import reduce_layer
    from hsviewer.core.analyses.reduce.spec import ReduceSpec
    from hsviewer.core.analyses.sweep.results import LayerResult, SweepResult
    from hsviewer.core.analyses.sweep.run import iter_sweep, layer_sweep
    from hsviewer.core.analyses.sweep.spec import SweepSpec
    from hsviewer.core.errors import HsviewerError
    from hsviewer.core.linalg.reduction import Reduction
    from hsviewer.core.model.default import DEFAULT_MODEL
    from hsviewer.core.model.load_spec import LoadSpec
    from hsviewer.core.model.loading import ModelHandle, load_model
    from hsviewer.core.passes.text import read_text_file
