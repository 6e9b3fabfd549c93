"""Results to and from JSON, derived from their dataclass fields and type hints.

One writer and one reader in place of a pair of methods per class, so that the two cannot drift
apart. A field whose JSON form differs declares it with field(metadata=...): ENCODE and DECODE
(value to JSON and back), OMIT_NONE (left out when None, as files saved before it lack it), SKIP
(written by the owner elsewhere) and FLATTEN (its keys among the owner's).
Reading ignores keys it does not know and gives an absent key the field's default, so that runs
saved before a field existed open; a required field that is absent is an HsviewerError naming it.

A result type declares SCHEMA = N (a ClassVar); its JSON says {"schema": N} first, and a file
without the key is version 1. A version newer than the type's is refused: a newer hsviewer wrote it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from hsviewer.core.errors import HsviewerError

SCHEMA_KEY = "schema"
ENCODE = "encode"  # metadata: value -> its JSON
DECODE = "decode"  # metadata: JSON -> the value
OMIT_NONE = "omit_none"  # metadata: True to leave a None out of the JSON
SKIP = "skip"  # metadata: True for a field the JSON keeps elsewhere (the owner writes it); read if present
FLATTEN = "flatten"  # metadata: True to merge the value's table into the owner's; DECODE then reads the owner's

T = TypeVar("T")


def schema_of(cls: type) -> dict[str, int]:
    """{"schema": N} for a result type that declares SCHEMA, else nothing: the key to_dict writes first."""
    version = getattr(cls, "SCHEMA", None)
    return {} if version is None else {SCHEMA_KEY: version}


def check_schema(cls: type, data: dict[str, Any]) -> int:
    """The data's schema version (1 without the key); an HsviewerError for one newer than cls reads."""
    known = getattr(cls, "SCHEMA", 1)
    version = data.get(SCHEMA_KEY, 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise HsviewerError(f"This {cls.__name__} says its schema version is {version!r}, which is not one.")
    if version > known:
        raise HsviewerError(
            f"This {cls.__name__} was written by a newer hsviewer (schema {version}); this version reads {known}."
        )
    return version


def to_dict(obj: Any) -> dict[str, Any]:
    """The dataclass as JSON: its schema, then each field in order, by its ENCODE hook or by its type."""
    out: dict[str, Any] = schema_of(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get(SKIP) or (value is None and (f.metadata.get(OMIT_NONE) or f.metadata.get(FLATTEN))):
            continue
        encode: Callable[[Any], Any] = f.metadata.get(ENCODE, encoded)
        if f.metadata.get(FLATTEN):
            out.update(encode(value))
        else:
            out[f.name] = encode(value)
    return out


def encoded(value: Any) -> Any:
    """A value as JSON holds it: dataclasses as tables, tuples and arrays as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (list, tuple)):
        return [encoded(v) for v in value]
    if isinstance(value, dict):
        return {k: encoded(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """The dataclass the data describes (see the module's docstring for what is forgiven)."""
    if not isinstance(data, dict):
        raise HsviewerError(f"A {cls.__name__} must be a table; got {type(data).__name__}.")
    check_schema(cls, data)
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        if f.metadata.get(FLATTEN):
            values[f.name] = f.metadata[DECODE](data)
            continue
        if f.name not in data or (data[f.name] is None and f.metadata.get(OMIT_NONE)):
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise HsviewerError(f"This {cls.__name__} lacks its {f.name!r}, which it cannot do without.")
            continue
        decode: Callable[[Any], Any] | None = f.metadata.get(DECODE)
        values[f.name] = decode(data[f.name]) if decode else decoded(hints[f.name], data[f.name])
    return cls(**values)


def decoded(hint: Any, value: Any) -> Any:
    """The JSON value as the type hint says: nested dataclasses, lists, tuples, dicts, Optional, arrays."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        return decoded(next(a for a in args if a is not type(None)), value)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return from_dict(hint, value)
    if origin is list:
        return [decoded(args[0] if args else Any, v) for v in value]
    if origin is tuple:
        inner = args[0] if args else Any
        return tuple(decoded(inner, v) for v in value)
    if origin is dict:
        return {k: decoded(args[1] if args else Any, v) for k, v in value.items()}
    if hint is np.ndarray:
        return np.asarray(value)
    if hint in (int, float, str) and not isinstance(value, bool):
        return hint(value)
    return value
