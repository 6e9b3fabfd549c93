"""The Choose-model dialog's Stream choice: it streams the model, and it is remembered."""

from __future__ import annotations

import pytest

from tests.support import TIMEOUT_MS
from tests.test_model_options import in_modal_dialog

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_stream_choice_streams_the_model_and_is_remembered(qtbot, make_window, settings, tiny_model_dir):
    window = make_window(settings)

    def choose(dialog):
        dialog.picker.combo.setCurrentText(str(tiny_model_dir))
        dialog.load_options.stream.setCurrentText("always")
        dialog.accept()

    in_modal_dialog(choose)
    with qtbot.waitSignal(window.model_loaded, timeout=TIMEOUT_MS):
        window.choose_model_dialog()
    assert window.model_worker.model.streamed and not window.errors

    second = make_window(settings)  # the same settings store, as after a restart
    seen = {}

    def look(dialog):
        seen["stream"] = dialog.load_options.stream.currentText()
        dialog.reject()

    in_modal_dialog(look)
    second.choose_model_dialog()
    assert seen == {"stream": "always"}
