"""Find bundled resources, installed, from a checkout or frozen by PyInstaller alike."""

from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_TEXT = "default_text.txt"
DEFAULT_IMAGE = "hubble_deep_field.jpg"
GUIDE = "guide/guide.md"  # Help > Guide; its pictures sit beside it


def resource_dir() -> Path:
    """hsviewer/data in a wheel, resources/ in a checkout, resources/ inside the bundle when frozen."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    package = Path(__file__).parent.parent  # hsviewer/
    packaged = package / "data"
    return packaged if packaged.is_dir() else package.parent / "resources"


def resource_path(name: str) -> Path:
    return resource_dir() / name


def default_text() -> str:
    return resource_path(DEFAULT_TEXT).read_text(encoding="utf-8").strip()


def default_image() -> Path:
    return resource_path(DEFAULT_IMAGE)


def guide_path() -> Path:
    return resource_path(GUIDE)
