"""Qt's SVG without the groups it writes for nothing: most of a figure's bytes.

QSvgGenerator opens a new <g> with the whole painter state (fill, stroke, font, ...) at every state
change, painted into or not: in a sweep tab's figure two groups in three are empty, and runs of
neighbours carry the same attributes (each axis tick, each marker). Empty groups go, and neighbours
with equal attributes become one group; the drawing order, so the picture, is unchanged.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
GROUP = f"{{{SVG_NS}}}g"


def compact_svg(path: str | Path) -> None:
    """Rewrite the SVG file at `path` (Qt's output) without empty groups, neighbours of one style merged."""
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    tree = ET.parse(path)
    compact_element(tree.getroot())
    tree.write(path, encoding="UTF-8", xml_declaration=True)


def compact_element(parent: ET.Element) -> None:
    """Below `parent`, depth first: drop the empty groups, then merge each run of equal neighbours."""
    for child in parent:
        compact_element(child)
    kept: list[ET.Element] = []
    for child in list(parent):
        parent.remove(child)
        if _empty_group(child):
            continue
        previous = kept[-1] if kept else None
        if previous is not None and _mergeable(previous, child):
            previous.extend(list(child))
            continue
        kept.append(child)
    parent.extend(kept)


def _empty_group(element: ET.Element) -> bool:
    return element.tag == GROUP and len(element) == 0 and not (element.text or "").strip()


def _mergeable(first: ET.Element, second: ET.Element) -> bool:
    """Two groups whose children mean the same in either: equal attributes, no id or text of their own."""
    if first.tag != GROUP or second.tag != GROUP or first.attrib != second.attrib or "id" in first.attrib:
        return False
    return not any((g.text or "").strip() or (g.tail or "").strip() for g in (first, second))
