"""A found model's cells as text, under the columns the command line's table and the app's list share."""

from __future__ import annotations

from hsviewer.core.model.discovery.found import FoundModel
from hsviewer.core.model.discovery.units import human_bytes, human_count

COLUMNS = ("name", "kind", "architecture", "params", "layers", "hidden", "quant", "size", "memory", "source")


def row_text(model: FoundModel) -> tuple[str, ...]:
    """A model's cells under COLUMNS, as text."""
    return (
        model.name,
        model.kind,
        model.architecture or "",
        human_count(model.parameters, model.parameters_estimated),
        str(model.layers or ""),
        str(model.hidden_size or ""),
        model.quantisation or "",
        human_bytes(model.file_bytes),
        f"{human_bytes(model.memory_bytes)} {model.memory_dtype}" if model.memory_bytes else "",
        model.source,
    )
