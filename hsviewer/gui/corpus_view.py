"""The sweep tab's corpus page: where the texts come from, the bands over texts that tighten as
texts finish (the threshold-free measures among them, over relative depth), and the texts by how far
each departs from the mean."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from hsviewer.core.analyses.corpus.results import CorpusResult, LayerAggregate, onset
from hsviewer.core.analyses.corpus.texts import BUNDLED
from hsviewer.core.library.compare import relative_depth
from hsviewer.gui import plots
from hsviewer.gui.measures_view import DEPTH, MASSIVE, MEASURES, ONSET_PEN, absent_note, drawable, show_note
from hsviewer.gui.plot_area import PlotArea, scroll_area
from hsviewer.gui.settings import Settings

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's own from Python 3.11; mypy checks for 3.10

ONE_TEXT, BUNDLED_CHOICE, CHOSEN = "The Hidden state tab's text", "Bundled corpus", "Corpus file or folder"
RUN_COLOURS = {
    "": (214, 39, 40),
    "exclude_first": (31, 119, 180),
    "exclude_massive": (44, 160, 44),
    "random": (255, 127, 14),
    "shuffled": (148, 103, 189),
}

BAND_TIPS = (
    "Components kept as a percent of each text's rank min(T, d), T its tokens, d the hidden size",
    "Each text's loss with the layer reduced minus that text's own clean loss, in nats",
    "KL(clean ‖ reduced) of the next-token distributions, mean over tokens, in nats",
)


class TextsSource(QWidget):
    """Single text or a corpus: the bundled one, or a file or folder chosen here."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.choice = QComboBox()
        self.choice.addItems([ONE_TEXT, BUNDLED_CHOICE, CHOSEN])
        self.choice.setToolTip(
            "What the sweep runs on: the one text of the Hidden state tab, or a corpus whose texts are each "
            "swept and then aggregated per layer (mean and 95% interval over the texts)"
        )
        self.path = ""
        self.browse = QPushButton("Choose…")
        self.browse.setToolTip(
            "A folder of .txt files (one text each), a .txt file whose texts are separated by blank lines, "
            "or a .jsonl or .csv file with a text column"
        )
        self.browse.clicked.connect(self._choose)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.choice, 1)
        row.addWidget(self.browse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.label)
        self.choice.currentIndexChanged.connect(self._changed)
        self._changed()

    def corpus(self) -> str | None:
        """The corpus to read ("bundled", a path), or None for the single text."""
        text = self.choice.currentText()
        if text == BUNDLED_CHOICE:
            return BUNDLED
        if text == CHOSEN:
            return self.path or None
        return None

    def set_source(self, source: str | None) -> None:
        """The texts a run was made on: None for the one text, "bundled", or a path."""
        if source is None:
            self.choice.setCurrentText(ONE_TEXT)
        elif source == BUNDLED:
            self.choice.setCurrentText(BUNDLED_CHOICE)
        else:
            self.set_path(source)

    def set_path(self, path: str) -> None:
        self.path = path
        self.choice.setCurrentText(CHOSEN)
        self._changed()

    def _choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Corpus file", "", "Corpora (*.txt *.jsonl *.csv)")
        if not path:
            path = QFileDialog.getExistingDirectory(self, "Or a folder of .txt files")
        if path:
            self.set_path(path)

    def _changed(self) -> None:
        chosen = self.choice.currentText() == CHOSEN
        self.browse.setVisible(chosen)
        self.label.setText((self.path or "No corpus chosen yet") if chosen else "")
        self.label.setVisible(chosen)

    def save(self, settings: Settings) -> None:
        settings.set("sweep/texts", self.choice.currentText())
        settings.set("sweep/corpus_path", self.path)

    def restore(self, settings: Settings) -> None:
        self.path = settings.get("sweep/corpus_path", "", str)
        self.choice.setCurrentText(settings.get("sweep/texts", ONE_TEXT, str))
        self._changed()


class BandPlot:
    """One measure per layer: each run's mean over texts as a line, its 95% interval as a band. The
    threshold-free measures are drawn over relative depth, as on the Measures page, with a note in place
    of empty axes where no text has a value (a run saved before hsviewer measured it)."""

    def __init__(
        self,
        layout: pg.GraphicsLayout,
        title: str,
        y_label: str,
        key: str,
        depth: bool = False,
        **position: Unpack[plots.Position],
    ) -> None:
        self.plot = plots.line_plot(layout, title, DEPTH if depth else "Layer", y_label, **position)
        plots.legend_below(self.plot)
        self.key = key
        self.depth = depth
        self.items: dict[str, tuple[Any, ...]] = {}
        self.note = plots.empty_note(self.plot, "")
        self.onset = pg.InfiniteLine(angle=90, pen=pg.mkPen(ONSET_PEN, width=1.5, style=Qt.PenStyle.DashLine))
        self.plot.addItem(self.onset, ignoreBounds=True)
        self.onset.hide()
        self.show_note(None)

    def set_run(self, label: str, name: str, rows: Sequence[LayerAggregate], n_layers: int) -> None:
        if label not in self.items:
            colour = RUN_COLOURS.get(label.partition(":")[0], (0, 0, 0))  # exclude_first:4 as exclude_first
            # curves, not PlotDataItems: a PlotDataItem without a pen keeps no path for the band to fill;
            # "finite": a layer no text has a value at (NaN) is a gap in the band, as in its mean line
            low, high = (pg.PlotCurveItem(pen=pg.mkPen(None), connect="finite") for _ in range(2))
            band = pg.FillBetweenItem(low, high, brush=(*colour, 50))
            mean = self.plot.plot(name=name, **plots.markers(colour, "o", 6, colour))
            self.plot.addItem(band)
            self.items[label] = (low, high, band, mean)
        low, high, _, mean = self.items[label]
        layers = np.array([row.layer for row in rows], dtype=float)
        x = relative_depth(layers, n_layers) if self.depth else layers
        values = [row.values[self.key] for row in rows]
        means = np.array([v.mean for v in values])
        mean.setData(*drawable(x, means))
        lows = np.array([v.ci95[0] if v.ci95 else v.mean for v in values])  # one text: no band
        highs = np.array([v.ci95[1] if v.ci95 else v.mean for v in values])
        low.setData(x, lows)
        high.setData(x, highs)

    def set_onset(self, depth: float | None, text: str) -> None:
        """The texts' mean massive-activation onset as a dashed line (None: no text has one)."""
        self.onset.setVisible(depth is not None)
        if depth is not None:
            self.onset.setValue(depth)
            self.onset.setToolTip(text)

    def has_values(self) -> bool:
        """Whether any run has a mean at any layer."""
        return any(mean.yData is not None and len(mean.yData) for *_, mean in self.items.values())

    def show_note(self, text: str | None) -> None:
        show_note(self.plot, self.note, text, depth=self.depth)

    def clear(self) -> None:
        for low, high, band, mean in self.items.values():
            for item in (band, mean):
                self.plot.removeItem(item)
            self.plot.legend.removeItem(mean)
            low.clear()
            high.clear()
        self.items = {}
        self.onset.hide()
        self.show_note(None)


class CorpusView(QWidget):
    """Mean and 95% interval over texts per layer, redrawn as each text finishes, and the texts."""

    open_text = Signal(int)  # the index of a text in the result, to show its own sweep

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: CorpusResult | None = None
        self.graphics = PlotArea(max_columns=2)
        self.bands = [
            BandPlot(self.graphics, "Components kept", "% of rank", "components_percent", col=0),
            BandPlot(self.graphics, "Loss change", "Δ loss (nats)", "loss_change", col=1),
            BandPlot(self.graphics, "KL divergence", "KL (nats)", "kl", row=1, col=0),
            *(BandPlot(self.graphics, m.title, m.y_label, m.key, depth=True) for m in MEASURES if m.key != MASSIVE),
        ]
        for band, tip in zip(self.bands[:3], BAND_TIPS, strict=True):  # the axis labels are short: they say more
            band.plot.setToolTip(f"{tip}. Mean over the texts, with its 95% interval")
        for band, measure in zip(self.bands[3:], (m for m in MEASURES if m.key != MASSIVE), strict=True):
            band.plot.setToolTip(f"{measure.tip}. Mean over the texts that have one, with its 95% interval")
        self.graphics.setToolTip(
            "Each line is the mean over the texts done so far; the band its 95% confidence interval "
            "(Student t). Bands tighten as texts finish"
        )
        self.texts = QListWidget()
        self.texts.setToolTip(
            "The texts swept, each after how far it departs from the corpus: its mean |components − mean| over "
            "layers. Double-click a text to show its own sweep"
        )
        self.texts.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.texts.itemDoubleClicked.connect(lambda item: self.open_text.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.summary = QLabel("Choose a corpus under Texts and run the sweep.")
        self.summary.setWordWrap(True)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.summary)
        side_layout.addWidget(self.texts, 1)
        splitter = QSplitter()
        splitter.addWidget(scroll_area(self.graphics))
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 1)
        splitter.setSizes([1000, 180])
        QVBoxLayout(self).addWidget(splitter)

    def begin(self, result: CorpusResult) -> None:
        self.result = result
        for band in self.bands:
            band.clear()
        self.texts.clear()
        self.summary.setText(f"Sweeping the texts of {result.source or 'the corpus'}…")

    def update_result(self, result: CorpusResult) -> None:
        """Redraw from the texts done so far."""
        self.result = result
        runs = [("", "reduced"), *((c, c.replace("_", " ")) for c in result.controls)]
        for label, name in runs:
            rows = result.aggregate(label)
            for band in self.bands:
                band.set_run(label, name, rows, result.n_layers)
        for band in self.bands:
            band.show_note(None if band.has_values() or not band.depth else absent_note(band.key, result.texts))
        self._onset(result)
        self.texts.clear()
        for index, (name, departure) in enumerate(zip(result.names, result.departures(), strict=True)):
            item = QListWidgetItem(f"{departure:5.2f}   {name}")  # the number first: a long name is cut, not it
            item.setData(Qt.ItemDataRole.UserRole, index)
            item.setToolTip(f"{name}: {len(result.texts[index].tokens)} tokens; double-click for its sweep")
            self.texts.addItem(item)
        self.summary.setText(self.describe(result))

    def _onset(self, result: CorpusResult) -> None:
        """The plain runs' mean massive-activation onset, a dashed line on the panels over relative depth."""
        found = onset(result.texts)
        mean = found["mean"]
        depth = None if mean is None else float(relative_depth(np.array([mean]), result.n_layers)[0])
        text = (
            ""
            if mean is None
            else f"Massive-activation onset: layer {mean:.1f}, the mean over {found['n']} of "
            f"{len(result.texts)} texts (> {found['threshold']:g}×)"
        )
        for band in self.bands:
            band.set_onset(depth if band.depth else None, text)

    @staticmethod
    def describe(result: CorpusResult) -> str:
        state = " (cancelled)" if result.cancelled else ""
        lines = [f"{len(result.texts)} texts swept{state}; departure = mean |components − mean| over layers."]
        return "<br>".join(lines + [f"<i>{note}</i>" for note in result.notes])
