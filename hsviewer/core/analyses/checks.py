"""The checks a saved result's JSON passes before anything is built from it: its fields of the types
its result class declares, its numbers of sane sizes, its text valid. Each kind's check (its
AnalysisKind.check) is made of these; each raises DamagedRun with what is wrong, and the runs
library names the file."""

from __future__ import annotations

import json
import types
from dataclasses import MISSING, fields
from typing import Any, Union, get_args, get_origin, get_type_hints

MAX_LAYERS = 100_000  # blocks in a model
MAX_INT = 1 << 63  # any whole number a result holds


class DamagedRun(ValueError):
    """What is wrong with a run file, as the end of 'NAME is damaged: ...'."""


def is_text(value: Any) -> bool:
    """A str that can be written out as UTF-8 (no lone surrogates, which JSON's \\ud800 escapes can make)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_depth(data: dict[str, Any], where: str) -> None:
    n = data["n_layers"]
    if not 1 <= n <= MAX_LAYERS:
        raise DamagedRun(f"{where}'s n_layers is {show(n)}, not a number of blocks (1 to {MAX_LAYERS})")


def check_layer_index(layer: Any, n_layers: int, where: str) -> None:
    if not is_int(layer) or not 0 <= layer < n_layers:
        raise DamagedRun(f"{where}'s layer is {show(layer)}, not a block of the model's {n_layers}")


def check_fields(cls: type, data: Any, where: str) -> None:
    """Every field of `cls` that JSON holds as it is (numbers, text, flags, lists of them) is there
    with its declared type, when the class has no default for it."""
    if not isinstance(data, dict):
        raise DamagedRun(f"{where} is {show(data)}, not a table")
    hints = get_type_hints(cls)
    for f in fields(cls):
        check = _checker(hints[f.name])
        if check is None:
            continue
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise DamagedRun(f"{where} has no {f.name!r}")
            continue
        if not check(data[f.name]):
            raise DamagedRun(f"{where}'s {f.name} is {show(data[f.name])}, not {_describe(hints[f.name])}")


def _checker(hint: Any) -> Any:
    """A test for a value of this type hint, or None for a type JSON does not hold as it is."""
    plain = {int: is_int, float: is_number, str: is_text, bool: lambda v: isinstance(v, bool)}
    if hint in plain:
        return plain[hint]
    origin, args = get_origin(hint), get_args(hint)
    if origin is list and len(args) == 1 and args[0] in plain:
        item = plain[args[0]]
        return lambda v: isinstance(v, list) and all(item(x) for x in v)
    if origin in (Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner = _checker(rest[0]) if len(rest) == 1 else None
        return None if inner is None else (lambda v: v is None or inner(v))
    return None


def _describe(hint: Any) -> str:
    names = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}
    if hint in names:
        return names[hint]
    if get_origin(hint) is list:
        return f"a list of {names[get_args(hint)[0]].removeprefix('a ')}s"
    return "of its type or null"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -MAX_INT <= value <= MAX_INT


def is_number(value: Any) -> bool:
    return is_int(value) or isinstance(value, float)


def show(value: Any) -> str:
    """A value as the message quotes it: short, whatever it is."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return f"a number of {len(str(abs(value)))} digits"
    text = json.dumps(value, ensure_ascii=True) if isinstance(value, (str, int, float, bool, type(None))) else None
    if text is None:
        text = "a table" if isinstance(value, dict) else "a list" if isinstance(value, list) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."
