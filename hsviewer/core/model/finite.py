"""NaN and Inf in a model's weights or in a pass, reported as such rather than as some other fault.

A NaN in the weights makes every later check fail in its own words (a model "not causal",
a loss of nan); the user needs to hear that the numbers are not numbers, and where.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from hsviewer.core.errors import HsviewerError


class LoadedModel(Protocol):
    """What the check reads of a loaded model (a ModelHandle: this module sits below loading)."""

    model: Any
    name: str

    @property
    def dtype(self) -> str: ...


def check_finite(handle: LoadedModel, values: torch.Tensor, where: str) -> None:
    """HsviewerError naming NaN or Inf when `values` (computed `where`) hold any, and whether the weights do."""
    if bool(torch.isfinite(values).all()):
        return
    bad = [name for name, p in handle.model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise HsviewerError(f"{handle.name}'s weights hold NaN or Inf ({bad[0]}{more}): its files are damaged.")
    raise HsviewerError(
        f"{handle.name} computes NaN or Inf {where} from finite weights in {handle.dtype}"
        f"{'; try --dtype float32' if handle.dtype != 'float32' else ''}."
    )
