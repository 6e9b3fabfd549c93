"""Every analysis kind, by name: the one place a new kind is registered."""

from __future__ import annotations

from hsviewer.core.analyses.corpus.kind import CORPUS
from hsviewer.core.analyses.image.kind import IMAGE
from hsviewer.core.analyses.intervene.kind import INTERVENE
from hsviewer.core.analyses.kind import AnalysisKind
from hsviewer.core.analyses.reduce.kind import REDUCE
from hsviewer.core.analyses.sweep.kind import SWEEP

KINDS: dict[str, AnalysisKind] = {kind.name: kind for kind in (IMAGE, REDUCE, SWEEP, CORPUS, INTERVENE)}
SAVED: dict[str, AnalysisKind] = {name: kind for name, kind in KINDS.items() if kind.saved}
COMPARABLE: dict[str, AnalysisKind] = {name: kind for name, kind in KINDS.items() if kind.curves is not None}
