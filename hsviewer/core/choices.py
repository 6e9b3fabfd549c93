"""What the command line offers to choose from, in a module without torch so its parser starts fast."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from hsviewer.core.errors import HsviewerError

DEVICES = re.compile(r"cpu|cuda|cuda:\d+|mps")  # what --device and load_model accept
CENTERINGS = ("double", "column", "none")  # lowrank's centrings
METHODS = ("prefix", "hooks")  # how a sweep runs each layer's tail
CONTROLS = ("exclude_first", "exclude_massive", "random", "shuffled")  # a sweep's control runs, by name
MASSIVE_RATIO = 100.0  # exclude_massive's default: a row whose largest |activation| passes 100x the median
CONTROL_SPELLINGS = (
    "exclude_first (the first token), exclude_first:N (the first N tokens, N >= 1), "
    f"exclude_massive (tokens whose largest |activation| passes {MASSIVE_RATIO:g}x the median), "
    "exclude_massive:RATIO (RATIO > 1), random, shuffled"
)
VALUES = ("mean", "zero")  # what an intervention sets a massive activation to
INTERVENTION_CONTROLS = ("random",)  # an intervention's control: as many entries, chosen at random
METRICS = {  # what a comparison can overlay, with its axis title
    "loss_change": "Loss change (nats)",
    "kl": "KL divergence (nats)",
    "components": "Components kept",
    "percent_rank": "Components (% of rank)",
    "hidden_diff": "Hidden-state difference norm",
    "logit_diff": "Logit difference norm",
    "participation_ratio": "Participation ratio",
    "effective_rank": "Effective rank",
    "anisotropy": "Anisotropy (top direction's share of the variance)",
    "twonn_dimension": "TwoNN intrinsic dimension",
    "prompt_entropy": "Prompt entropy (nats)",
    "prompt_entropy_normalised": "Prompt entropy / log(rank)",
    "linearity": "Linearity to the next layer (Procrustes)",
}
# The metrics that are a layer's threshold-free measures, under the same key in a sweep's layer
# and (with _mean and _ci95) in a corpus aggregate's.
MEASURE_METRICS = (
    "participation_ratio",
    "effective_rank",
    "anisotropy",
    "twonn_dimension",
    "prompt_entropy",
    "prompt_entropy_normalised",
    "linearity",
)


@dataclass(frozen=True)
class Control:
    """One control run: its name and, for exclude_first and exclude_massive, its count or ratio."""

    name: str  # one of CONTROLS
    value: float | None = None  # exclude_first's N (whole), exclude_massive's ratio; None for the others

    @property
    def label(self) -> str:
        """The run's name in results and legends, which parse_control reads back as this control:
        'exclude_first:4', 'exclude_massive:100', 'exclude_massive:2.5'; plain exclude_first for N = 1,
        as before counts existed."""
        if self.value is None or (self.name == "exclude_first" and self.value == 1):
            return self.name
        return f"{self.name}:{repr(self.value).removesuffix('.0')}"  # every digit: the ratio is read back


def parse_control(text: str) -> Control:
    """A control's spelling (see CONTROL_SPELLINGS) as a Control; HsviewerError naming the spellings if wrong."""
    name, colon, value = str(text).strip().partition(":")
    if name not in CONTROLS or (colon and name not in ("exclude_first", "exclude_massive")):
        raise HsviewerError(f"Unknown control {text!r}; the controls are {CONTROL_SPELLINGS}.")
    if name == "exclude_first":
        return Control(name, _count(value.strip(), text) if colon else 1)
    if name == "exclude_massive":
        return Control(name, _ratio(value.strip(), text) if colon else MASSIVE_RATIO)
    return Control(name)


def parse_controls(texts: Sequence[str]) -> list[Control]:
    """Every control of a sweep, checked once; the same run asked for twice is a mistake."""
    controls = [parse_control(text) for text in texts]
    labels = [control.label for control in controls]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise HsviewerError(f"The control {twice[0]} is asked for twice; give each control once.")
    return controls


def control_labels(texts: Sequence[str]) -> list[str]:
    """The controls' run labels ('exclude_first:4', 'exclude_massive:100'), checked."""
    return [control.label for control in parse_controls(texts)]


def _count(value: str, text: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise HsviewerError(
            f"exclude_first:N takes a whole number of tokens N of at least 1; got {text!r}. "
            f"The controls are {CONTROL_SPELLINGS}."
        )
    return int(value)


def _ratio(value: str, text: str) -> float:
    try:
        ratio = float(value)
    except ValueError:
        ratio = math.nan
    if not (math.isfinite(ratio) and ratio > 1):
        raise HsviewerError(
            f"exclude_massive:RATIO takes a number above 1 (times the median |activation|); got {text!r}. "
            f"The controls are {CONTROL_SPELLINGS}."
        )
    return ratio


def check_device(device: str | None) -> str | None:
    """None (choose one), or cpu, cuda, cuda:N or mps; anything else (meta, a typo) is refused before loading."""
    if device is None:
        return None
    if not DEVICES.fullmatch(str(device).strip()):
        raise HsviewerError(f"Unknown device {device!r}: use cpu, cuda, cuda:N (N a GPU number) or mps.")
    return str(device).strip()


def available_devices() -> list[str]:
    """The devices this machine has, as --device spells them: cpu, then cuda (cuda:N when there
    are several GPUs) and mps. Imports torch: call it off a GUI thread."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    gpus = ["cuda"] if count == 1 else [f"cuda:{n}" for n in range(count)]
    mps = ["mps"] if torch.backends.mps.is_available() else []
    return ["cpu", *gpus, *mps]
