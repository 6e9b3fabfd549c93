"""What a one-layer reduction is asked for, checked once, and its settings as the runs library keeps them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hsviewer.core.errors import HsviewerError
from hsviewer.core.linalg import lowrank
from hsviewer.core.linalg.reduction import Reduction


@dataclass(frozen=True, kw_only=True)
class ReduceSpec:
    """The block whose output is reduced (0-based) and how. Whether the model has that block is the
    model's to say: iter_reduce checks the layer against it (reduce.run.check_layer)."""

    layer: int
    reduction: Reduction = field(default_factory=Reduction)

    def __post_init__(self) -> None:
        if not lowrank.is_whole(self.layer):
            raise HsviewerError(f"Layer must be a whole number; got {self.layer!r}.")
        if not isinstance(self.reduction, Reduction):
            raise HsviewerError(f"A reduction must be a Reduction; got {self.reduction!r}.")
        object.__setattr__(self, "layer", int(self.layer))  # frozen: 2.0 is layer 2

    def settings(self) -> dict[str, Any]:
        """What the runs library records of a reduce run: the layer and the reduction's fields."""
        return {"layer": self.layer, "reduction": asdict(self.reduction)}

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> ReduceSpec:
        """The spec a saved reduce run's settings describe."""
        return cls(layer=settings["layer"], reduction=Reduction.from_dict(settings["reduction"]))
