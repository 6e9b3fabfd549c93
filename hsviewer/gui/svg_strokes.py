"""Qt's SVG with its hairlines drawn in page coordinates, so that every SVG reader draws them thin.

Qt writes a curve in its data coordinates inside a group that scales them to the page (by 1000 or
more along an axis), and marks the stroke "non-scaling" (SVG 1.2's vector-effect). Readers that
ignore vector-effect (librsvg, cairosvg, so rsvg-convert and much of what turns SVG into PDF) scale
the stroke with the group: a 1.5-pixel line becomes a band a thousand pixels wide. Here each such
shape has its group's transform applied to its coordinates, and the group's transform is dropped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
NON_SCALING = "non-scaling-stroke"
_MATRIX = re.compile(r"matrix\(([^)]*)\)")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_ABSOLUTE_PAIRS = re.compile(r"[MLCZ\s,0-9.eE+-]*")  # Qt writes paths with these alone: x,y pairs

Matrix = tuple[float, float, float, float, float, float]


def flatten_strokes(path: str | Path) -> None:
    """Rewrite the SVG file at `path` (Qt's output) with its non-scaling strokes in page coordinates."""
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    tree = ET.parse(path)
    for group in tree.getroot().iter(f"{{{SVG_NS}}}g"):
        _flatten_group(group)
    tree.write(path, encoding="UTF-8", xml_declaration=True)


def _flatten_group(group: ET.Element) -> None:
    """Only a group all of whose children are non-scaling shapes Qt writes (path, polyline, rect)."""
    matrix = _matrix(group.get("transform", ""))
    children = list(group)
    if matrix is None or not children or not all(_flattenable(child) for child in children):
        return
    for child in children:
        _flatten_shape(child, matrix)
    del group.attrib["transform"]


def _matrix(transform: str) -> Matrix | None:
    found = _MATRIX.fullmatch(transform.strip())
    values = [float(v) for v in _NUMBER.findall(found.group(1))] if found else []
    return (values[0], values[1], values[2], values[3], values[4], values[5]) if len(values) == 6 else None


def _flattenable(shape: ET.Element) -> bool:
    if shape.get("vector-effect") != NON_SCALING:
        return False
    tag = shape.tag.rpartition("}")[2]
    if tag == "path":
        return bool(_ABSOLUTE_PAIRS.fullmatch(shape.get("d", "")))
    return tag in ("polyline", "rect")


def _flatten_shape(shape: ET.Element, m: Matrix) -> None:
    tag = shape.tag.rpartition("}")[2]
    if tag == "rect":  # a rectangle under a rotation or shear is no rectangle: written as a path
        x, y, w, h = (float(shape.attrib.pop(name, "0")) for name in ("x", "y", "width", "height"))
        corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
        shape.tag = f"{{{SVG_NS}}}path"
        shape.set("d", "M" + " L".join(_point(m, px, py) for px, py in corners) + " Z")
    elif tag == "polyline":
        values = [float(v) for v in _NUMBER.findall(shape.get("points", ""))]
        shape.set("points", " ".join(_point(m, *pair) for pair in zip(values[::2], values[1::2], strict=True)))
    else:
        shape.set("d", _path(shape.get("d", ""), m))
    del shape.attrib["vector-effect"]


def _path(d: str, m: Matrix) -> str:
    """Path data of M, L, C and Z, all absolute: each number pair is one point to transform."""
    out, pending = [], []
    for token in re.findall(r"[MLCZ]|" + _NUMBER.pattern, d):
        if token in "MLCZ":
            out.append(token)
            continue
        pending.append(float(token))
        if len(pending) == 2:
            out.append(_point(m, pending[0], pending[1]))
            pending.clear()
    return " ".join(out)


def _point(m: Matrix, x: float, y: float) -> str:
    a, b, c, d, e, f = m
    return f"{a * x + c * y + e:.7g},{b * x + d * y + f:.7g}"
