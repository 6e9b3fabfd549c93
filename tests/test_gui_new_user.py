"""What a new user met in the app (issue 20): a refused budget that was remembered, a percent box that
raised k on every focus change, refusals naming the CLI's flags, and the Runs tab's names, settings,
legend and status line."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from hsviewer.core.analyses.registry import SAVED
from hsviewer.core.model.memory import MemoryPlan, refusal
from hsviewer.gui.main_window import MainWindow
from hsviewer.gui.runs_panel import INFO_ROLE
from tests.support import TIMEOUT_MS, wait_job
from tests.test_model_options import in_modal_dialog

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def image_file(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path / "noise.png"
    Image.fromarray((rng.random((48, 64)) * 255).astype(np.uint8)).save(path)
    return path


def focused(qtbot, window, widget):
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus)


# --- 1. a refused budget is not remembered; a refused load offers the dialog -----------------------


def test_a_budget_refused_in_the_dialog_is_not_remembered(qtbot, window, settings, tiny_model_dir):
    def choose(dialog):
        dialog.picker.combo.setCurrentText(str(tiny_model_dir))
        dialog.load_options.budget.setText("1MB")
        dialog.accept()

    in_modal_dialog(choose)
    with qtbot.waitSignal(window.error_occurred, timeout=TIMEOUT_MS) as error:
        window.choose_model_dialog()
    assert error.args[0].startswith("Not enough memory")
    settings.save()
    assert settings.get("model/memory_budget", "", str) == ""  # the next start plans for what is free
    assert window.tried_options.budget == "1MB"  # what the dialog reopens with, to be changed


def test_a_refused_load_offers_to_open_the_choose_model_dialog(qtbot, window, settings, tiny_model_dir):
    settings.set("model/memory_budget", "1MB")  # remembered by an older version: refused at start-up
    shown = []
    window.show_load_error = shown.append
    with qtbot.waitSignal(window.error_occurred, timeout=TIMEOUT_MS):
        window.load_model(str(tiny_model_dir))
    assert len(shown) == 1 and shown[0].startswith("Not enough memory")

    opened = []
    window.choose_model_dialog = opened.append

    def press_choose(box):
        assert isinstance(box, QMessageBox) and box.text() == shown[0]
        next(b for b in box.buttons() if b.text() == "Choose model…").click()

    in_modal_dialog(press_choose)
    MainWindow.show_load_error(window, shown[0])
    assert [o.budget for o in opened] == ["1MB"]  # the dialog shows the options that were refused


# --- 2. the percent box does not raise k when the focus leaves it -----------------------------------


def test_leaving_the_percent_box_keeps_k(qtbot, window, make_window, settings, image_file):
    from hsviewer.core.linalg.lowrank import components_for_threshold

    with wait_job(qtbot, window, "image"):
        window.open_image(str(image_file))
    tab = window.image_tab
    svd = tab.result
    focused(qtbot, window, tab.variance)
    tab.variance.lineEdit().selectAll()
    qtbot.keyClicks(tab.variance, "90")
    qtbot.keyClick(tab.variance, Qt.Key.Key_Return)
    k = tab.k_spin.value()
    assert svd.variance_kept(k) >= 90.0 > svd.variance_kept(k - 1)
    for _ in range(3):  # Tab away, click back in: the rounded percent shown is no new target
        window.hidden_tab.text.setFocus()
        qtbot.waitUntil(lambda: not tab.variance.hasFocus())
        focused(qtbot, window, tab.variance)
    assert tab.k_spin.value() == k
    # every k whose percent rounds up (the box shows more than it keeps) stays put too
    rounded_up = [j for j in range(2, len(svd.s) - 1) if round(svd.variance_kept(j), 2) > svd.variance_kept(j)]
    assert rounded_up
    for j in rounded_up[:5]:
        tab.k_spin.setValue(j)
        focused(qtbot, window, tab.variance)
        window.hidden_tab.text.setFocus()
        qtbot.waitUntil(lambda: not tab.variance.hasFocus())
        assert tab.k_spin.value() == j
    # nor does the next start, nor the next image: they choose k for what the k shown keeps, not the rounding
    tab.save_settings(settings)
    assert components_for_threshold(svd.s, settings.get("image/variance", 0.0, float)) == j
    again = make_window(settings)  # restores the settings
    with wait_job(qtbot, again, "image"):
        again.open_image(str(image_file))
    assert again.image_tab.k_spin.value() == j


def test_leaving_the_threshold_boxes_of_the_other_tabs_changes_nothing(qtbot, window):
    for tab in (window.hidden_tab, window.sweep_tab):
        window.tabs.setCurrentWidget(tab)
        box = tab.form.threshold
        box.setValue(90.15)
        for _ in range(3):
            focused(qtbot, window, box)
            tab.form.centering.setFocus()
            qtbot.waitUntil(lambda box=box: not box.hasFocus())
        assert box.value() == pytest.approx(90.15) and not window.jobs


# --- 4. the app's refusals name its fields; the CLI's its flags; an unreachable URL says so ------------

PLAN = MemoryPlan(
    dtype="float32", device="cpu", weights=500_000_000, conversion=0, analysis=250_000_000,
    tokens=1024, available=1_000_000, budget_given=True,
)  # fmt: skip


def test_a_refusal_in_the_app_names_the_dialogs_fields_and_the_cli_names_its_flags():
    from hsviewer.gui.model_options import field_refusal

    app = field_refusal(PLAN)
    assert "--" not in app
    assert "Precision bfloat16" in app and "Device" in app and "Memory budget" in app
    cli = refusal(PLAN)
    assert "--dtype bfloat16" in cli and "--device cuda" in cli and "--memory-budget" in cli
    assert app.split(" Try ")[0] == cli.split(" Try ")[0]  # the same numbers


def test_a_load_refused_in_the_app_names_the_fields(qtbot, window, settings, tiny_model_dir):
    settings.set("model/memory_budget", "1MB")
    with qtbot.waitSignal(window.error_occurred, timeout=TIMEOUT_MS) as error:
        window.load_model(str(tiny_model_dir))
    assert error.args[0].startswith("Not enough memory") and "--" not in error.args[0]
    assert "Memory budget" in error.args[0] and "Device" in error.args[0]


def test_an_unreachable_url_says_so_and_that_files_work_offline(qtbot, window, no_proxy):
    from tests.test_core_image import free_port

    url = f"http://127.0.0.1:{free_port()}/picture.png"
    with qtbot.waitSignal(window.error_occurred, timeout=TIMEOUT_MS) as error:
        window.open_image(url)
    message = error.args[0]
    assert message.startswith(f"Could not reach {url}") and "offline" in message and "file" in message
    assert "ConnectionError" not in message


# --- 6. the Runs tab -------------------------------------------------------------------------------


def test_the_setting_says_grid_controls_and_texts():
    assert SAVED["sweep"].setting({"kind": "sweep", "threshold": 95.0}) == "95%"
    with_more = {
        "kind": "sweep",
        "threshold": 95.0,
        "grid": {"settings": ["80%", "90%", "99%"]},
        "controls": {"random": {}, "shuffled": {}, "exclude_first": {}},
    }
    assert SAVED["sweep"].setting(with_more) == "95%, grid of 3, 3 controls"
    corpus = {"kind": "corpus", "fixed_components": 4, "texts": [{}, {}], "controls": ["random"]}
    assert SAVED["corpus"].setting(corpus) == "k = 4, 2 texts, 1 control"


def sweep_once(qtbot, window, threshold, grid="", controls=()):
    tab = window.sweep_tab
    tab.form.threshold.setValue(threshold)
    tab.grid_field.setText(grid)
    for name, box in tab.control_boxes.items():
        box.setChecked(name in controls)
    with wait_job(qtbot, window, "sweep"):
        tab.run()
    qtbot.waitUntil(lambda: not window.jobs)


@pytest.mark.parametrize("size", [(1024, 700), (1280, 800)])
def test_run_names_are_shown_whole_at_small_sizes(qtbot, loaded, size):
    runs = loaded.runs_tab
    sweep_once(qtbot, loaded, 90.0, grid="80,99", controls=("random",))
    info = runs.infos()[0]
    long_name = "my sweep of the instruct model at ninety percent with a grid and a control run"
    runs.model.item(0, 0).setText(long_name)
    loaded.resize(*size)
    loaded.tabs.setCurrentWidget(runs)
    QApplication.processEvents()
    table = runs.table
    assert table.textElideMode() != Qt.TextElideMode.ElideMiddle
    metrics = table.fontMetrics()
    for column, text in ((0, long_name), (3, info.setting)):
        width = table.columnWidth(column) - 8  # the cell's margins
        needed = metrics.boundingRect(QRect(0, 0, width, 10_000), Qt.TextFlag.TextWordWrap, text)
        assert needed.height() <= table.rowHeight(0), (column, text, width)
        assert table.wordWrap()


def test_a_rename_reaches_the_open_comparison(qtbot, loaded):
    runs = loaded.runs_tab
    sweep_once(qtbot, loaded, 90.0)
    sweep_once(qtbot, loaded, 50.0)
    runs.select([info.id for info in runs.infos()])
    runs.compare_selected()
    first = runs.infos()[0]
    ids = [runs.model.item(r, 0).data(INFO_ROLE).id for r in range(runs.model.rowCount())]
    runs.model.item(ids.index(first.id), 0).setText("the renamed one")  # what editing the cell ends in
    labels = [curve.label for curve in runs.compare_view.comparison.curves]
    assert "the renamed one" in labels and first.name not in labels
    legend = [label.text for _, label in runs.compare_view.legend.items]
    assert any(text.startswith("the renamed one") for text in legend), legend


def test_opening_a_run_replaces_a_cancelled_jobs_status_line(qtbot, loaded):
    runs = loaded.runs_tab
    sweep_once(qtbot, loaded, 90.0)
    loaded.status.setText("Corpus sweep cancelled")  # as a cancelled corpus sweep leaves it
    runs.open(runs.infos()[0])
    assert "cancelled" not in loaded.status.text() and runs.infos()[0].name in loaded.status.text()
