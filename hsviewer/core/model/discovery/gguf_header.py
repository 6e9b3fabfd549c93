"""A GGUF file's metadata and tensor table, read from its first bytes without the gguf package's reader."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hsviewer.core.errors import HsviewerError
from hsviewer.core.model.discovery.units import human_bytes


@dataclass(frozen=True, kw_only=True)
class GGUFHeader:
    """A GGUF file's key-value metadata (an array stands as its length) and its tensor table's sums."""

    metadata: dict[str, Any] = field(default_factory=dict)
    tensor_count: int = 0
    parameters: int = 0
    file_bytes: int = 0
    data_bytes: int = 0  # where the tensor table says the last tensor's data ends, from the file's start

    def truncation(self) -> str | None:
        """Why the file cannot hold the tensors its header describes, or None when it can."""
        if self.data_bytes <= self.file_bytes:
            return None
        return (
            f"cut short: its tensors need {human_bytes(self.data_bytes)} but the file has "
            f"{human_bytes(self.file_bytes)} (a download or copy that did not finish?)"
        )


HEADER_START = 4 << 20  # bytes read first: the whole header of a model with a 50k-token vocabulary
HEADER_LIMIT = 64 << 20  # never more: a 262k-token vocabulary with its merges is about 15 MB
# What a model's header holds at most, far above any real one (a few dozen keys, a few thousand tensors,
# a vocabulary of a few hundred thousand tokens, arrays of arrays one level deep): a file claiming more is
# refused at once rather than walked through, so a listing stays well under a second whatever a file claims.
MAX_KEYS = 1 << 16
MAX_TENSORS = 1 << 17
MAX_NESTING = 8
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class _PastEnd(IndexError):
    """The header goes on past the bytes read so far."""


def read_gguf_header(path: str | Path) -> GGUFHeader:
    """The metadata and tensor table of a GGUF file (v2 or v3), read from its first bytes only.

    gguf.GGUFReader reads the same but builds a numpy view for every token of the
    vocabulary: 4.6 s for the default model's header, where this takes about 10 ms.
    Arrays are skipped over and stand as their lengths. The header is read in growing
    pieces, up to HEADER_LIMIT. ValueError when the file is not a readable GGUF file.
    """
    path = Path(path)
    size = path.stat().st_size
    if size < 24:
        raise ValueError(f"{path.name} is not a GGUF file (only {size} bytes).")
    limit = HEADER_START
    with path.open("rb") as f:
        while True:
            f.seek(0)
            with memoryview(f.read(min(limit, size, HEADER_LIMIT))) as data:
                try:
                    return _parse_gguf(data, path.name, size)
                except (struct.error, IndexError, OverflowError):
                    if len(data) < min(size, HEADER_LIMIT):  # the header goes on past what was read
                        limit *= 4
                        continue
                    if len(data) < size:
                        e = IndexError(f"its header does not end within its first {HEADER_LIMIT >> 20} MiB")
                    raise ValueError(f"{path.name} is not a readable GGUF file ({type(e).__name__}: {e}).") from None


def _parse_gguf(data: Any, name: str, size: int) -> GGUFHeader:
    if data[:4] != b"GGUF":
        raise ValueError(f"{name} is not a GGUF file.")
    order = "<"
    (version,) = struct.unpack_from("<I", data, 4)
    if version > 0xFFFF:  # written on a big-endian machine
        order = ">"
        (version,) = struct.unpack_from(">I", data, 4)
    if version < 2:
        raise ValueError(f"{name} is GGUF version {version}; only versions 2 and later are read.")
    u32, u64 = struct.Struct(order + "I").unpack_from, struct.Struct(order + "Q").unpack_from
    tensor_count, kv_count = struct.unpack_from(order + "QQ", data, 8)
    for count, what, most in (
        (kv_count, "metadata keys", min(size // 12, MAX_KEYS)),
        (tensor_count, "tensors", min(size // 24, MAX_TENSORS)),
    ):
        if count > most:
            raise ValueError(f"{name} is not a readable GGUF file (its header claims {count:,} {what}).")
    offset = 24

    def string(at: int) -> tuple[str, int]:
        (n,) = u64(data, at)
        end = at + 8 + n
        if end > len(data):
            raise _PastEnd("a string runs past the end of what was read")
        return bytes(data[at + 8 : end]).decode("utf-8", errors="replace"), end

    def skip(kind: int, at: int, count: int, depth: int = 0) -> int:
        if kind in _SCALARS:
            end = at + count * struct.calcsize(_SCALARS[kind])
        elif kind == _STRING:
            if count * 8 > len(data) - at:  # before walking: each string takes 8 bytes at least
                raise _PastEnd("an array runs past the end of what was read")
            end, view, unpack = at, data, u64  # locals: this loop runs once per token of the vocabulary
            for _ in range(count):
                (n,) = unpack(view, end)
                end += 8 + n
        elif kind == _ARRAY:
            if depth >= MAX_NESTING:
                raise ValueError(f"{name} is not a readable GGUF file (arrays nested over {MAX_NESTING} deep).")
            if count * 12 > len(data) - at:
                raise _PastEnd("an array runs past the end of what was read")
            end = at
            for _ in range(count):
                (inner,) = u32(data, end)
                (n,) = u64(data, end + 4)
                end = skip(inner, end + 12, n, depth + 1)
        else:
            raise IndexError(f"unknown value type {kind}")
        if end > len(data):
            raise _PastEnd("an array runs past the end of what was read")
        return end

    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key, offset = string(offset)
        (kind,) = u32(data, offset)
        offset += 4
        if kind == _STRING:
            metadata[key], offset = string(offset)
        elif kind == _ARRAY:
            (inner,) = u32(data, offset)
            (count,) = u64(data, offset + 4)
            metadata[key] = count
            offset = skip(inner, offset + 12, count)
        elif kind in _SCALARS:
            (metadata[key],) = struct.unpack_from(order + _SCALARS[kind], data, offset)
            offset += struct.calcsize(_SCALARS[kind])
        else:
            raise IndexError(f"unknown value type {kind} for {key}")
    parameters, data_end = 0, 0
    for _ in range(tensor_count):
        _, offset = string(offset)
        (dims,) = u32(data, offset)
        if dims > 8:
            raise IndexError(f"a tensor with {dims} dimensions")
        shape = struct.unpack_from(f"{order}{dims}Q", data, offset + 4)
        kind, start = struct.unpack_from(order + "IQ", data, offset + 4 + 8 * dims)
        offset += 4 + 8 * dims + 4 + 8  # the dimensions, then the type and the data offset
        parameters += math.prod(shape)
        data_end = max(data_end, start + _tensor_bytes(kind, math.prod(shape)))
    alignment = metadata.get("general.alignment", 32)
    alignment = alignment if type(alignment) is int and alignment > 0 else 32
    data_start = -(-offset // alignment) * alignment
    return GGUFHeader(
        metadata=metadata,
        tensor_count=tensor_count,
        parameters=parameters,
        file_bytes=size,
        data_bytes=data_start + data_end if tensor_count else 0,
    )


def _tensor_bytes(kind: int, elements: int) -> int:
    """The bytes a tensor of this ggml type and element count takes (gguf's table of block sizes);
    0 for a type this gguf package does not know, which transformers will name when it loads."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
    except (ValueError, KeyError):
        return 0
    return -(-elements // block) * block_bytes


def check_gguf(path: Path) -> GGUFHeader:
    """The header of a GGUF file about to be converted; HsviewerError when it is unreadable or cut short."""
    try:
        header = read_gguf_header(path)
    except (OSError, ValueError) as e:
        raise HsviewerError(
            str(e) if isinstance(e, ValueError) else f"Could not read {path}: {e.strerror or e}."
        ) from None
    problem = header.truncation()
    if problem:
        raise HsviewerError(f"{path.name} is {problem}.")
    return header
