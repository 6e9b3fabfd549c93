"""The sweep tab's control runs: a checkbox each, exclude_first with its count of tokens and
exclude_massive with its ratio to the median, what the legends call each run and its colour."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QGridLayout, QSpinBox, QWidget

from hsviewer.core.choices import MASSIVE_RATIO, Control, parse_control
from hsviewer.gui.settings import Settings

CONTROLS = {
    "exclude_first": "exclude first tokens",
    "exclude_massive": "exclude massive tokens",
    "random": "random subspace",
    "shuffled": "shuffled tokens",
}
CONTROL_TIPS = {
    "exclude_first": "A second sweep whose basis is built without the first tokens (how many: beside), which "
    "often carry massive activations; those tokens' rows are left as they are. StreamingLLM keeps four",
    "exclude_massive": "A second sweep whose basis is built without every token whose largest |activation| "
    "passes this many times the median |activation| of the layer's hidden state; those rows are left as they "
    "are, and each layer lists the tokens it left out",
    "random": "A second sweep that keeps a random subspace of the same size instead of the top components: "
    "how much worse than chance is the SVD's choice?",
    "shuffled": "A second sweep on the same tokens in a random order, with its own clean loss: how much of the "
    "structure comes from word order?",
}
RUN_PENS = {
    "": "k",
    "exclude_first": "#1f77b4",
    "exclude_massive": "#2ca02c",
    "random": "#ff7f0e",
    "shuffled": "#9467bd",
}


def run_pen(label: str) -> str:
    """A run's colour by its label ("" the plain run, else a control's: 'exclude_first:4')."""
    return RUN_PENS[label] if label == "" else RUN_PENS[parse_control(label).name]


def run_name(label: str) -> str:
    """A control run as the legends name it: 'exclude first token', 'exclude first 4 tokens',
    'exclude massive tokens (100×)'."""
    control = parse_control(label)
    if control.name == "exclude_first" and control.value is not None:
        return "exclude first token" if control.value == 1 else f"exclude first {control.value:g} tokens"
    if control.name == "exclude_massive" and control.value is not None:
        return f"{CONTROLS[control.name]} ({control.value:g}×)"
    return CONTROLS[control.name]


class ControlInputs(QWidget):
    """A checkbox per control; exclude_first's count and exclude_massive's ratio in spin boxes beside theirs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.boxes = {name: QCheckBox(label) for name, label in CONTROLS.items()}
        for name, box in self.boxes.items():
            box.setToolTip(CONTROL_TIPS[name])
        self.first_count = QSpinBox()
        self.first_count.setRange(1, 4096)
        self.first_count.setValue(1)
        self.first_count.setToolTip("How many tokens, from the first, the exclude-first run leaves out of the basis")
        self.massive_ratio = QDoubleSpinBox()
        self.massive_ratio.setRange(1.1, 1e6)
        self.massive_ratio.setDecimals(1)
        self.massive_ratio.setSuffix(" ×")
        self.massive_ratio.setValue(MASSIVE_RATIO)
        self.massive_ratio.setToolTip(
            "A token is left out of the exclude-massive run's basis when its largest |activation| passes this "
            "many times the median |activation| of the layer's hidden state"
        )
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        values = {"exclude_first": self.first_count, "exclude_massive": self.massive_ratio}
        for row, (name, box) in enumerate(self.boxes.items()):
            grid.addWidget(box, row, 0)
            if name in values:
                grid.addWidget(values[name], row, 1)

    def controls(self) -> list[str]:
        """The controls checked, as the sweep spells them: 'exclude_first:4', 'exclude_massive:100', 'random'."""
        values = {"exclude_first": float(self.first_count.value()), "exclude_massive": self.massive_ratio.value()}
        return [Control(name, values.get(name)).label for name, box in self.boxes.items() if box.isChecked()]

    def set_controls(self, labels: list[str]) -> None:
        """Check the controls a run was made with (their labels), their count and ratio in the spin boxes."""
        chosen = {control.name: control for control in map(parse_control, labels)}
        for name, box in self.boxes.items():
            box.setChecked(name in chosen)
        if "exclude_first" in chosen:
            self.first_count.setValue(int(chosen["exclude_first"].value or 1))
        if "exclude_massive" in chosen:
            self.massive_ratio.setValue(chosen["exclude_massive"].value or MASSIVE_RATIO)

    def save(self, settings: Settings) -> None:
        for name, box in self.boxes.items():
            settings.set(f"sweep/control_{name}", box.isChecked())
        settings.set("sweep/exclude_first_count", self.first_count.value())
        settings.set("sweep/exclude_massive_ratio", self.massive_ratio.value())

    def restore(self, settings: Settings) -> None:
        for name, box in self.boxes.items():
            box.setChecked(settings.get(f"sweep/control_{name}", False, bool))
        self.first_count.setValue(settings.get("sweep/exclude_first_count", 1, int))
        self.massive_ratio.setValue(settings.get("sweep/exclude_massive_ratio", MASSIVE_RATIO, float))
