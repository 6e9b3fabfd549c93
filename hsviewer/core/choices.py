"""What the command line offers to choose from, in a module without torch so its parser starts fast."""

from __future__ import annotations

import re

from hsviewer.core.errors import HsviewerError

DEVICES = re.compile(r"cpu|cuda|cuda:\d+|mps")  # what --device and load_model accept
CENTERINGS = ("double", "column", "none")  # lowrank's centrings
METHODS = ("prefix", "hooks")  # how a sweep runs each layer's tail
CONTROLS = ("exclude_first", "random", "shuffled")  # a sweep's control runs
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
