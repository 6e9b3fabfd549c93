"""Dialogs: choosing a model, asking for a URL, the About box."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QInputDialog, QLabel, QVBoxLayout, QWidget

import hsviewer
from hsviewer.gui.forms import ModelPicker


class ChooseModelDialog(QDialog):
    """File > Choose model: the model picker in a dialog; OK loads the chosen model."""

    def __init__(self, recent: list[str], current: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose model")
        self.picker = ModelPicker(recent)
        self.picker.combo.setCurrentText(current)
        self.picker.load.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("A model folder, a .gguf file, a hub id from the local cache, or 'default':"))
        layout.addWidget(self.picker)
        layout.addWidget(buttons)
        self.resize(640, self.sizeHint().height())


def ask_url(parent: QWidget) -> str:
    """An image URL from the user, or '' when cancelled."""
    url, ok = QInputDialog.getText(parent, "Open image URL", "Image URL (http or https):")
    return url.strip() if ok else ""


def about_text(model_name: str, licence: str) -> str:
    model = html.escape(model_name or "none loaded")
    terms = html.escape(licence or "unknown")
    return (
        f"<h3>hsviewer {hsviewer.__version__}</h3>"
        "<p>How much of a language model's hidden state survives dimensionality reduction (SVD).</p>"
        f"<p><b>Model in use:</b> {model}<br><b>Licence:</b> {terms}</p>"
        "<p>After project 29 of Mike X Cohen's <i>50 ML projects to understand LLMs</i>.</p>"
    )
