"""What an analysis declares about itself, once, so that nothing else keeps a table of kinds.

The runs library reads and labels saved runs, comparisons draw their curves, the command line
prints them and the app exports their data through an AnalysisKind; a new analysis is one package
with its kind.py and one entry in registry.py. Free of torch: the GUI thread lists runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hsviewer.core.choices import Control

Rows = list[list[Any]]


@dataclass(frozen=True, kw_only=True)
class Points:
    """One run's per-layer values of a metric, with a 95% band where the run has one (corpora)."""

    layers: np.ndarray  # block numbers
    values: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None


# A run's curve of a metric: (its result's to_dict(), its model's hidden size when known, the metric,
# the run's name for messages) -> Points.
Curves = Callable[[dict[str, Any], "int | None", str, str], Points]


@dataclass(frozen=True, kw_only=True)
class AnalysisKind:
    """One kind of analysis: its name, its result type and what the rest of hsviewer asks of it."""

    name: str  # as saved in a run's "kind" and shown in the Runs tab
    result: type[Any]  # the result dataclass: to_dict(), and from_dict(data) (with arrays= when `arrays`)
    table: Callable[[Any], Rows]  # the result's data as CSV rows, header first
    setting: Callable[[dict[str, Any]], str]  # the Setting column: '95%', 'k = 8', '95%, 3 texts'
    title: Callable[[dict[str, Any]], str] = lambda data: ""  # what a run's default name adds after the model
    saved: bool = True  # kept in the runs library when it finishes
    arrays: bool = False  # its result holds matrices, kept in an .npz beside the run's JSON
    plain_keys: frozenset[str] = frozenset()  # the keys of the result's own JSON file (hsviewer sweep --out)
    curves: Curves | None = None  # per-layer curves for comparisons; None: not comparable
    summary: Callable[[dict[str, Any]], str] = lambda data: ""  # the result as text (hsviewer runs show)
    check: Callable[[dict[str, Any]], None] = lambda data: None  # a saved result's JSON: DamagedRun if malformed

    def load(self, data: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
        """The result object its to_dict() (and matrices) describe."""
        return self.result.from_dict(data, arrays) if self.arrays else self.result.from_dict(data)

    def default_name(self, data: dict[str, Any]) -> str:
        return f"{self.name} {data.get('model', '')}{self.title(data)} {self.setting(data)}"


def reduction_label(data: dict[str, Any]) -> str:
    """The threshold or k a result reduced with, as the tabs label it: '95%', 'k = 8'."""
    if data.get("fixed_components") is not None:
        return f"k = {data['fixed_components']}"
    threshold = data.get("threshold")
    return f"{threshold:g}%" if isinstance(threshold, (int, float)) else ""


def reduction_setting(data: dict[str, Any]) -> str:
    """The threshold or k, then the tokens the reduction left out of its basis, spelt as the controls
    are: '95%', '95%, exclude_first:4', 'k = 8, exclude_massive:100'."""
    return ", ".join([reduction_label(data), *exclusions(data)])


def exclusions(data: dict[str, Any]) -> list[str]:
    """exclude_first (true or a count) and exclude_massive (a ratio), where a result's reduction has them."""
    first, ratio = data.get("exclude_first"), data.get("exclude_massive")
    parts = []
    if first is True or (isinstance(first, int) and first > 0):
        parts.append(Control("exclude_first", int(first)).label)
    if isinstance(ratio, (int, float)) and not isinstance(ratio, bool):
        parts.append(Control("exclude_massive", ratio).label)
    return parts


def sweep_label(data: dict[str, Any], texts: bool = False) -> str:
    """The reduction, then what else a sweep holds, so that two runs differing in those read differently:
    '95%', 'k = 8', '95%, grid of 4, 3 controls'; with `texts`, a corpus run's count: '95%, 3 texts, 1 control'."""
    parts = [reduction_setting(data)]
    grid = data.get("grid")
    if isinstance(grid, dict) and isinstance(grid.get("settings"), list) and grid["settings"]:
        parts.append(f"grid of {len(grid['settings'])}")
    if texts and isinstance(data.get("texts"), list):
        parts.append(count(len(data["texts"]), "text"))
    if isinstance(data.get("controls"), (dict, list)) and data["controls"]:
        parts.append(count(len(data["controls"]), "control"))
    return ", ".join(parts)


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"
