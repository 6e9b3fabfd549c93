"""A safetensors file's JSON header, read by its length prefix: the tensors' shapes and dtypes, no weights."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hsviewer.core.model.discovery.files import loads


def safetensors_header(path: Path) -> dict[str, Any]:
    """A safetensors file's JSON header: its 8-byte little-endian length, then that many bytes."""
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(f"{path.name} is too short")
        (length,) = struct.unpack("<Q", prefix)
        if length > 100_000_000:
            raise ValueError(f"{path.name} has an implausible header length {length}")
        header = loads(f.read(length), path.name)
    if not isinstance(header, dict):
        raise ValueError(f"{path.name}: the header is not a JSON object")
    return header


def safetensors_parameters(files: Sequence[Path]) -> tuple[int, list[str]]:
    """The number of weights in the files (the product of each tensor's shape) and their dtypes."""
    total, dtypes = 0, []
    for path in files:
        for key, tensor in safetensors_header(path).items():
            if key == "__metadata__" or not isinstance(tensor, dict):
                continue
            shape = tensor.get("shape", [])
            if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
                raise ValueError(f"{path.name}: tensor {str(key)[:80]!r} has the shape {str(shape)[:80]}")
            total += math.prod(shape)
            dtypes.append(str(tensor.get("dtype", "")))
    return total, dtypes
