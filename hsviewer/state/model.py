"""What the app knows of the loaded model: the model itself stays in the worker's slot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hsviewer.core.model.loading import ModelHandle


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """The loaded model's name, size, device, precision, memory plan and licence."""

    source: str
    name: str
    n_layers: int
    hidden_size: int
    device: str
    licence: str
    dtype: str = ""
    plan: str = ""  # the memory plan in a few words ("peak 1.19 GB of 20.00 GB free"), "" when there was none
    cache_folder: str = ""  # a GGUF model's converted folder in the cache

    @classmethod
    def of(cls, handle: ModelHandle, source: str) -> ModelInfo:
        return cls(
            source=source,
            name=handle.name,
            n_layers=handle.n_layers,
            hidden_size=handle.hidden_size,
            device=str(handle.device),
            licence=licence(source),
            dtype=handle.dtype,
            plan=handle.plan.summary() if handle.plan else "",
            cache_folder=str(handle.cache_folder or ""),
        )

    def describe(self) -> str:
        """For the status bar: 'SmolLM2-135M-Instruct · float32 · cpu · peak 1.19 GB of 20.00 GB free'."""
        return " · ".join(part for part in (self.name, self.dtype, self.device, self.plan) if part)


def licence(source: str) -> str:
    """The model's licence as its files state it, or a pointer to where to look."""
    from hsviewer.core.model.default import DEFAULT_DESCRIPTION, DEFAULT_MODEL

    if source == DEFAULT_MODEL:
        return DEFAULT_DESCRIPTION
    readme = Path(source).expanduser() / "README.md"
    if readme.is_file():
        for line in readme.read_text(encoding="utf-8", errors="replace").splitlines()[:40]:
            if line.lower().startswith("license:"):
                return line.split(":", 1)[1].strip()
    return "not stated in the model's files: see its model card"
