"""What a sweep was asked for, to tell when the result shown no longer answers the inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hsviewer.core.analyses.sweep.results import RunStarted
    from hsviewer.core.linalg.reduction import Reduction


@dataclass(frozen=True, kw_only=True)
class SweepInputs:
    """A sweep's model (its name), text, reduction, grid and controls; None where unknown (no model
    loaded, a saved run without its text), which is never a difference."""

    model: str | None
    text: str | None
    reduction: Reduction
    grid: tuple[Reduction, ...] = ()
    controls: tuple[str, ...] = ()

    @classmethod
    def of_start(cls, start: RunStarted, text: str | None) -> SweepInputs:
        """What a sweep was made with, as its plain run's start says (the controls: the other runs)."""
        run = start.run
        controls = tuple(label for label in start.runs if label)
        return cls(model=run.model, text=text, reduction=run.reduction, grid=tuple(run.grid), controls=controls)


def differences(made: SweepInputs, asked: SweepInputs) -> tuple[str, ...]:
    """The inputs that differ ("model", "text", "reduction", "grid", "controls"), in that order."""
    out = []
    if None not in (made.model, asked.model) and made.model != asked.model:
        out.append("model")
    if None not in (made.text, asked.text) and made.text != asked.text:
        out.append("text")
    if _setting(made.reduction) != _setting(asked.reduction):
        out.append("reduction")
    if [_setting(g) for g in made.grid] != [_setting(g) for g in asked.grid]:
        out.append("grid")
    if sorted(made.controls) != sorted(asked.controls):
        out.append("controls")
    return tuple(out)


def _setting(reduction: Reduction) -> tuple[float | None, int | None, str]:
    """What a reduction asks for: its threshold or fixed k, and its centring (not how it is computed)."""
    return reduction.threshold, reduction.fixed_components, reduction.centering


def describe(changed: Sequence[str]) -> str:
    """'the model and grid changed' for the tab's out-of-date note."""
    if len(changed) < 2:
        return f"the {''.join(changed)} changed"
    return f"the {', '.join(changed[:-1])} and {changed[-1]} changed"
