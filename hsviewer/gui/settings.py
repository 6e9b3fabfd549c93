"""QSettings with a default and a type for every read, so a damaged file never breaks start-up."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QByteArray, QSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

ORGANIZATION = "hsviewer"
APPLICATION = "hsviewer"
RECENT_MODELS = 8


class Settings:
    """The app's persistent choices: last model, image, text, thresholds, window geometry."""

    def __init__(self, store: QSettings | None = None) -> None:
        scope = QSettings.Scope.UserScope
        self.store = store or QSettings(QSettings.Format.IniFormat, scope, ORGANIZATION, APPLICATION)

    def get(self, key: str, default: T, kind: type[T]) -> T:
        """The stored value as `kind`, or the default when missing or unreadable.

        Converted here rather than by QSettings, which turns "abc" read as int into 0.
        """
        raw = self.store.value(key, None)
        if raw is None:
            return default
        try:
            return _convert(raw, kind)
        except (TypeError, ValueError):
            log.warning("Ignoring unreadable setting %s = %r", key, raw)
            return default

    def set(self, key: str, value: Any) -> None:
        self.store.setValue(key, value)

    def save(self) -> bool:
        """Write the settings now; False, with a warning in the log, when the file could not be
        written (QSettings then leaves the old file whole)."""
        self.store.sync()
        status = self.store.status()
        if status == QSettings.Status.NoError:
            return True
        log.warning("Could not save the settings to %s (%s)", self.store.fileName(), status.name)
        return False

    def geometry(self) -> QByteArray:
        return self.get("window/geometry", QByteArray(), QByteArray)

    def recent_models(self) -> list[str]:
        text = self.get("model/recent", "", str)
        return [line for line in text.splitlines() if line.strip()]

    def folder(self, kind: str) -> str:
        """The folder a file dialog of this kind ("image", "figure", "data") last used: each kind its own,
        so saving a table does not open among the pictures; "" when none yet."""
        return self.get(f"folders/{kind}", "", str)

    def remember_folder(self, kind: str, path: str) -> None:
        """Remember the folder of the file a dialog of this kind was given."""
        self.set(f"folders/{kind}", str(Path(path).parent))

    def remember_model(self, source: str) -> None:
        recent = [source] + [m for m in self.recent_models() if m != source]
        self.set("model/recent", "\n".join(recent[:RECENT_MODELS]))
        self.set("model/last", source)


def _convert(raw: Any, kind: type[T]) -> T:
    if isinstance(raw, kind):
        return raw
    value: Any  # a `kind`, which mypy cannot tell from `kind is bool` (it does not narrow type[T])
    if kind is bool:
        value = _as_bool(raw)
    elif kind is float:
        value = float(raw)
        if not math.isfinite(value):  # a NaN would be clamped to a spin box's maximum
            raise ValueError(raw)
    elif kind in (int, str):
        value = int(raw) if kind is int else str(raw)
    else:
        raise TypeError(f"{type(raw).__name__} is not {kind.__name__}")
    return value


def _as_bool(raw: Any) -> bool:
    text = str(raw).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(text)
