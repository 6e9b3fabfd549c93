"""The Qt-free core: every number hsviewer shows is computed here."""

from hsviewer.core.errors import HsviewerError
from hsviewer.core.hidden import HiddenReduction, reduce_layer
from hsviewer.core.image import ImageSVD, image_svd, load_image
from hsviewer.core.models import DEFAULT_MODEL, ModelHandle, load_model
from hsviewer.core.reduction import Reduction
from hsviewer.core.sweep import LayerResult, SweepResult, layer_sweep
from hsviewer.core.text import read_text_file

__all__ = [
    "DEFAULT_MODEL",
    "HiddenReduction",
    "HsviewerError",
    "ImageSVD",
    "LayerResult",
    "ModelHandle",
    "Reduction",
    "SweepResult",
    "image_svd",
    "layer_sweep",
    "load_image",
    "load_model",
    "read_text_file",
    "reduce_layer",
]
