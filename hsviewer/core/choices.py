"""What the command line offers to choose from, in a module without torch so its parser starts fast."""

from __future__ import annotations

import re

from hsviewer.core.errors import HsviewerError

DEVICES = re.compile(r"cpu|cuda|cuda:\d+|mps")  # what --device and load_model accept


def check_device(device: str | None) -> str | None:
    """None (choose one), or cpu, cuda, cuda:N or mps; anything else (meta, a typo) is refused before loading."""
    if device is None:
        return None
    if not DEVICES.fullmatch(str(device).strip()):
        raise HsviewerError(f"Unknown device {device!r}: use cpu, cuda, cuda:N (N a GPU number) or mps.")
    return str(device).strip()
