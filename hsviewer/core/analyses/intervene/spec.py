"""What an intervention is asked for, checked once, and its settings as the runs library keeps them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hsviewer.core.analyses.intervene.layers import LayerChoice, parse_layers
from hsviewer.core.choices import INTERVENTION_CONTROLS, VALUES
from hsviewer.core.errors import HsviewerError


@dataclass(frozen=True, kw_only=True)
class InterveneSpec:
    """The blocks (a block, blocks, or text: "all", "10-20", "3,7"), the ratio to the median |activation|
    past which an entry is massive, what it is set to, the control ("random": as many entries at random)
    and its seed. Whether the model has the blocks is the model's to say (layers.choose_layers)."""

    layers: LayerChoice
    ratio: float = 100.0
    value: str = VALUES[0]
    control: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        ratio = self.ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or ratio < 1:
            raise HsviewerError(
                f"The ratio must be a number of at least 1 (times the median |activation|); got {ratio!r}."
            )
        if self.value not in VALUES:
            raise HsviewerError(f"The value must be one of {', '.join(VALUES)}; got {self.value!r}.")
        if self.control is not None and self.control not in INTERVENTION_CONTROLS:
            raise HsviewerError(f"The control must be one of {', '.join(INTERVENTION_CONTROLS)}; got {self.control!r}.")
        if isinstance(self.layers, str):
            parse_layers(self.layers)  # a misspelling is refused here; the blocks' range once the model is known
        elif isinstance(self.layers, Sequence):
            object.__setattr__(self, "layers", tuple(self.layers))  # frozen: a tuple however given

    def settings(self) -> dict[str, Any]:
        """What the runs library records of an intervention: the layers as given (blocks as a list), the ratio,
        value, control and seed."""
        layers = list(self.layers) if isinstance(self.layers, tuple) else self.layers
        return {"layers": layers, "ratio": self.ratio, "value": self.value, "control": self.control, "seed": self.seed}

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> InterveneSpec:
        """The spec a saved intervention's settings describe."""
        return cls(
            layers=settings["layers"],
            ratio=settings["ratio"],
            value=settings["value"],
            control=settings.get("control"),
            seed=settings.get("seed", 0),
        )
