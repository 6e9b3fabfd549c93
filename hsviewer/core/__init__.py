"""The Qt-free core: every number hsviewer shows is computed here.

Names are exported lazily (PEP 562): `import hsviewer.core` stays cheap, and the modules
themselves import torch at the top, where their annotations need it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "CorpusResult": "corpus_results",
    "DEFAULT_MODEL": "default_model",
    "HiddenReduction": "hidden_results",
    "HsviewerError": "errors",
    "ImageSVD": "image",
    "LayerResult": "sweep_results",
    "ModelHandle": "models",
    "Reduction": "reduction",
    "SweepResult": "sweep_results",
    "image_svd": "image",
    "iter_corpus_sweep": "corpus_sweep",
    "iter_sweep": "sweep",
    "layer_sweep": "sweep",
    "load_image": "image",
    "load_model": "models",
    "read_corpus": "corpus",
    "read_text_file": "text",
    "reduce_layer": "hidden",
}

__all__ = [
    "DEFAULT_MODEL",
    "CorpusResult",
    "HiddenReduction",
    "HsviewerError",
    "ImageSVD",
    "LayerResult",
    "ModelHandle",
    "Reduction",
    "SweepResult",
    "image_svd",
    "iter_corpus_sweep",
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
    from hsviewer.core.corpus import read_corpus
    from hsviewer.core.corpus_results import CorpusResult
    from hsviewer.core.corpus_sweep import iter_corpus_sweep
    from hsviewer.core.default_model import DEFAULT_MODEL
    from hsviewer.core.errors import HsviewerError
    from hsviewer.core.hidden import reduce_layer
    from hsviewer.core.hidden_results import HiddenReduction
    from hsviewer.core.image import ImageSVD, image_svd, load_image
    from hsviewer.core.models import ModelHandle, load_model
    from hsviewer.core.reduction import Reduction
    from hsviewer.core.sweep import iter_sweep, layer_sweep
    from hsviewer.core.sweep_results import LayerResult, SweepResult
    from hsviewer.core.text import read_text_file
