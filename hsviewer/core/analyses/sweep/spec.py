"""What a sweep (or corpus sweep) is asked for, checked once, and its settings as the runs library keeps them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hsviewer.core.choices import METHODS, parse_controls
from hsviewer.core.errors import HsviewerError
from hsviewer.core.linalg import lowrank
from hsviewer.core.linalg.grid import parse_grid
from hsviewer.core.linalg.reduction import Reduction


@dataclass(frozen=True, kw_only=True)
class SweepSpec:
    """The reduction, the grid of further reductions measured at every layer from the same SVD, the
    controls (spellings of choices.CONTROL_SPELLINGS, each a full sweep of its own), the method
    ("prefix" reuses the clean pass up to the reduced block; "hooks" is the notebook's full pass)
    and the batch: how many layers' tails one pass runs (None: sweep.run.default_batch)."""

    reduction: Reduction = field(default_factory=Reduction)
    grid: Sequence[Reduction] = ()  # a tuple once built
    controls: Sequence[str] = ()  # a tuple once built
    method: str = METHODS[0]
    batch: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.reduction, Reduction):
            raise HsviewerError(f"A sweep's reduction must be a Reduction; got {self.reduction!r}.")
        object.__setattr__(self, "grid", tuple(self.grid))  # frozen: a tuple however given
        object.__setattr__(self, "controls", tuple(self.controls))
        if not all(isinstance(setting, Reduction) for setting in self.grid):
            raise HsviewerError(f"A sweep's grid holds Reductions; got {list(self.grid)!r}.")
        if self.method not in METHODS:
            raise HsviewerError(f"Method must be one of {', '.join(METHODS)}; got {self.method!r}.")
        parse_controls(self.controls)
        if self.batch is not None and (not lowrank.is_whole(self.batch) or self.batch < 1):
            raise HsviewerError(f"The batch must be a whole number of layers of at least 1; got {self.batch!r}.")

    @classmethod
    def parse(
        cls,
        *,
        reduction: Reduction | None = None,
        grid: str = "",
        controls: Sequence[str] = (),
        method: str = METHODS[0],
        batch: int | None = None,
    ) -> SweepSpec:
        """The spec with its grid read from text ("80,90,99", or k values with fixed components), each
        setting the reduction with its threshold (or k) replaced, as the command line's --grid."""
        reduction = reduction or Reduction()
        return cls(reduction=reduction, grid=parse_grid(grid, reduction), controls=controls, method=method, batch=batch)

    def settings(self) -> dict[str, Any]:
        """What the runs library records of a sweep: the reduction's fields, the grid's labels, the controls
        as given and the method. The batch is left out: it changes how the layers are computed, not what."""
        return {
            "reduction": asdict(self.reduction),
            "grid": [setting.label() for setting in self.grid],
            "controls": list(self.controls),
            "method": self.method,
        }

    def corpus_settings(self, source: str) -> dict[str, Any]:
        """What the runs library records of a corpus sweep: a sweep's settings and the corpus's source."""
        return self.settings() | {"source": source}

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> SweepSpec:
        """The spec a saved (corpus) sweep's settings describe. The settings keep the grid's labels only
        ("80%", "k = 4"): each is rebuilt as the command line builds it, the reduction with its threshold
        (or k) replaced, so a threshold is as exact as its label (6 significant digits)."""
        reduction = Reduction.from_dict(settings["reduction"])
        return cls(
            reduction=reduction,
            grid=tuple(_setting_of(label, reduction) for label in settings.get("grid", [])),
            controls=tuple(settings.get("controls", [])),
            method=settings.get("method", METHODS[0]),
        )


def _setting_of(label: str, reduction: Reduction) -> Reduction:
    """The grid setting a label names: 'k = 4' fixes k, '80%' sets the threshold."""
    if label.startswith("k = "):
        return replace(reduction, fixed_components=int(label.removeprefix("k = ")))
    return replace(reduction, threshold=float(label.removesuffix("%")), fixed_components=None)
