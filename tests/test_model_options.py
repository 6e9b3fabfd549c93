"""Loading your own model from the GUI: precision, device and memory budget (remembered), the
memory plan in the chooser and the status bar, a refusal that keeps the model loaded before, and
the dialog of converted GGUF models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from hsviewer.core.choices import available_devices
from hsviewer.core.errors import HsviewerError
from hsviewer.core.model import gguf_cache
from hsviewer.core.model.memory import RUNTIME_BYTES, MemoryPlan
from hsviewer.gui.dialogs import ChooseModelDialog
from tests.gguf_files import write_tiny_gguf
from tests.support import TIMEOUT_MS, wait_job


def test_plan_summary_is_the_peak_against_what_is_free_or_the_budget():
    plan = MemoryPlan(
        dtype="float32", device="cpu", weights=500_000_000, conversion=0, analysis=250_000_000,
        tokens=1024, available=20_000_000_000, budget_given=False,
    )  # fmt: skip
    peak = RUNTIME_BYTES + 750_000_000
    assert plan.summary() == f"peak {peak / 1e9:.2f} GB of 20.00 GB free"
    with_budget = MemoryPlan(**{**plan.__dict__, "available": 6 * 2**30, "budget_given": True})
    assert with_budget.summary() == f"peak {peak / 1e9:.2f} GB of 6.44 GB budget"


def test_available_devices_lists_only_what_exists(monkeypatch):
    import torch

    devices = available_devices()
    assert devices[0] == "cpu"
    assert ("cuda" in devices or "cuda:0" in devices) == torch.cuda.is_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert available_devices() == ["cpu", "cuda"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert available_devices() == ["cpu", "cuda:0", "cuda:1"]


def in_modal_dialog(action):
    """Run action(dialog) on the modal dialog the next call opens, once it is shown."""

    def poll():
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            QTimer.singleShot(10, poll)
        else:
            action(dialog)

    QTimer.singleShot(0, poll)


def test_precision_device_and_budget_load_the_model_and_are_remembered(qtbot, make_window, settings, tiny_model_dir):
    import torch

    window = make_window(settings)

    def choose(dialog):
        dialog.picker.combo.setCurrentText(str(tiny_model_dir))
        dialog.load_options.dtype.setCurrentText("bfloat16")
        dialog.load_options.device.setCurrentText("cpu")
        dialog.load_options.budget.setText("6 GiB")
        dialog.accept()

    in_modal_dialog(choose)
    with qtbot.waitSignal(window.model_loaded, timeout=TIMEOUT_MS) as loaded:
        window.choose_model_dialog()
    handle = window.model_worker.model
    assert handle.dtype == "bfloat16" and str(handle.device) == "cpu"
    assert handle.memory_budget == 6 * 2**30
    assert next(handle.model.parameters()).dtype == torch.bfloat16 and loaded.args[0].dtype == "bfloat16"
    status = window.model_status.text()
    assert status.startswith(f"{tiny_model_dir.name} · bfloat16 · cpu · peak ")
    assert status.endswith(" of 6.44 GB budget")  # 6 GiB = 6.44e9 bytes
    assert not window.errors

    second = make_window(settings)  # the same settings store, as after a restart
    seen = {}

    def look(dialog):
        options = dialog.load_options
        seen.update(dtype=options.dtype.currentText(), device=options.device.currentText())
        seen["budget"] = options.budget.text()
        dialog.reject()

    in_modal_dialog(look)
    second.choose_model_dialog()
    assert seen == {"dtype": "bfloat16", "device": "cpu", "budget": "6 GiB"}


def test_a_budget_that_is_no_size_is_said_and_nothing_loads(qtbot, window, settings, tiny_model_dir):
    dialog = ChooseModelDialog([], str(tiny_model_dir), submit=window.submit)
    qtbot.addWidget(dialog)
    dialog.load_options.budget.setText("lots")
    dialog.update_plan()
    assert not dialog.ok_button.isEnabled()
    assert dialog.plan.text() == "A memory size looks like 6GB, 6GiB or 512MB; got 'lots'."
    dialog.load_options.budget.setText("512MB")
    dialog.update_plan()
    assert dialog.ok_button.isEnabled()

    settings.set("model/memory_budget", "lots")  # a hand-edited settings file
    submitted = []
    window.job_submitted.connect(submitted.append)
    window.load_model(str(tiny_model_dir))
    assert window.errors == ["A memory size looks like 6GB, 6GiB or 512MB; got 'lots'."]
    assert submitted == [] and window.model_info is None and window.model_worker.model is None


def test_the_chooser_shows_the_plan_of_the_chosen_model_with_the_chosen_options(qtbot, window, tiny_model_dir):
    from hsviewer.core.model.load_plan import plan_load
    from hsviewer.core.model.load_spec import LoadSpec

    dialog = ChooseModelDialog([], "", submit=window.submit)
    qtbot.addWidget(dialog)
    dialog.picker.combo.setCurrentText(str(tiny_model_dir))
    dialog.load_options.device.setCurrentText("cpu")
    qtbot.waitUntil(lambda: dialog.plan.text().startswith("Memory plan (float32 on cpu)"), timeout=TIMEOUT_MS)
    expected = plan_load(LoadSpec(source=str(tiny_model_dir), device="cpu"))
    assert dialog.plan.text().split("; peak")[0] == expected.describe().split("; peak")[0]
    dialog.load_options.dtype.setCurrentText("float16")
    dialog.load_options.budget.setText("6GB")
    qtbot.waitUntil(lambda: dialog.plan.text().startswith("Memory plan (float16 on cpu)"), timeout=TIMEOUT_MS)
    assert dialog.plan.text().endswith(" of 6.00 GB budget.")
    dialog.load_options.budget.setText("1MB")
    qtbot.waitUntil(lambda: dialog.plan.text().startswith("Not enough memory"), timeout=TIMEOUT_MS)
    assert "of 1.0 MB budget" in dialog.plan.text() and "color" in dialog.plan.styleSheet()
    dialog.picker.combo.setCurrentText(str(tiny_model_dir / "missing"))
    qtbot.waitUntil(lambda: dialog.plan.text().startswith("No model folder at"), timeout=TIMEOUT_MS)


def test_a_refused_load_keeps_the_model_loaded_before_working(qtbot, loaded, settings, tiny_model_dir):
    before = loaded.model_info
    handle = loaded.model_worker.model
    settings.set("model/memory_budget", "1MB")
    with qtbot.waitSignal(loaded.error_occurred, timeout=TIMEOUT_MS) as error:
        loaded.load_model(str(tiny_model_dir))
    assert error.args[0].startswith("Not enough memory: Memory plan (bfloat16 on cpu)")  # auto: the narrower
    assert "of 1.0 MB budget" in error.args[0]
    assert loaded.model_info is before and loaded.model_worker.model is handle
    assert loaded.model_status.text() == before.describe()
    with wait_job(qtbot, loaded, "hidden"):
        loaded.hidden_tab.run()
    assert loaded.hidden_tab.result is not None and len(loaded.errors) == 1


def disk_size(folder: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)


def test_converted_models_are_listed_and_deleting_the_loaded_ones_is_safe(qtbot, window, tmp_path, monkeypatch):
    from hsviewer.gui.cache_dialog import ConvertedModelsDialog, size_text

    monkeypatch.setenv("HSVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    first, second = tmp_path / "first.gguf", tmp_path / "second.gguf"
    write_tiny_gguf(first, "llama", "Q8_0")
    write_tiny_gguf(second, "gpt2", "F16", seed=1)
    with qtbot.waitSignal(window.model_loaded, timeout=TIMEOUT_MS):
        window.load_model(str(first))  # converted on the way
    loaded_folder = Path(window.model_info.cache_folder)
    assert loaded_folder.parent == tmp_path / "cache" / "models"
    for _ in gguf_cache.cached_folder(second, dtype="bfloat16"):
        pass

    dialog = ConvertedModelsDialog(window.submit, window.model_info.cache_folder)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: "converted models" in dialog.total.text(), timeout=TIMEOUT_MS)
    rows = [
        [dialog.table_model.item(r, c).text() for c in range(dialog.table_model.columnCount())]
        for r in range(dialog.table_model.rowCount())
    ]
    second_folder = next(p for p in (tmp_path / "cache" / "models").iterdir() if p != loaded_folder)
    assert sorted(rows) == [
        ["first (loaded)", "float32", size_text(disk_size(loaded_folder)), str(first)],
        ["second", "bfloat16", size_text(disk_size(second_folder)), str(second)],
    ]
    total = size_text(disk_size(loaded_folder) + disk_size(second_folder))
    assert dialog.total.text() == f"2 converted models, {total} on disk, in {tmp_path / 'cache'}"

    questions = []
    dialog.confirm = lambda question: questions.append(question) or len(questions) > 1  # no, then yes
    loaded_row = next(r for r, row in enumerate(rows) if row[0] == "first (loaded)")
    dialog.table.selectRow(loaded_row)
    dialog.delete_selected()
    assert "first is loaded now: it stays in memory" in questions[0] and loaded_folder.is_dir()  # said no
    dialog.delete_selected()
    qtbot.waitUntil(lambda: dialog.total.text().startswith("1 converted model,"), timeout=TIMEOUT_MS)
    assert not loaded_folder.exists() and second_folder.is_dir()
    assert [c.source for c in dialog.cached] == [str(second)]

    with wait_job(qtbot, window, "hidden"):  # the loaded model still works without its files
        window.hidden_tab.run()
    assert window.hidden_tab.result is not None and not window.errors

    dialog.clear_all()
    qtbot.waitUntil(lambda: dialog.total.text().startswith("0 converted models,"), timeout=TIMEOUT_MS)
    assert "Delete every converted model (1, " in questions[2] and not second_folder.exists()
    assert dialog.table_model.rowCount() == 0 and not dialog.clear_button.isEnabled()


def test_the_file_menu_opens_the_converted_models_dialog(qtbot, window):
    actions = {a.text().replace("&", ""): a for a in window.menuBar().actions()[0].menu().actions()}
    seen = []

    def look(dialog):
        seen.append(dialog.windowTitle())
        dialog.reject()

    in_modal_dialog(look)
    actions["Converted models…"].trigger()
    assert seen == ["Converted models"]


def test_a_conversion_that_cannot_be_deleted_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HSVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "models" / "tiny-0123456789abcdef"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(bytes(10))

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(gguf_cache.shutil, "rmtree", refuse)
    with pytest.raises(HsviewerError) as error:
        gguf_cache.clear_cached(folder.name)
    assert str(error.value) == f"Could not delete {folder}: Permission denied"


def test_a_cache_that_cannot_be_listed_is_said_once_not_retried(qtbot, window, monkeypatch):
    # Refreshing after every failure retried a listing that failed again: warnings without end.
    from PySide6.QtWidgets import QMessageBox

    from hsviewer.gui.cache_dialog import ConvertedModelsDialog

    def unreadable():
        raise HsviewerError("Could not read the cache: Permission denied")

    warnings = []
    monkeypatch.setattr(gguf_cache, "list_cached", unreadable)
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: warnings.append(text))
    dialog = ConvertedModelsDialog(window.submit, "")
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: bool(warnings), timeout=TIMEOUT_MS)
    with qtbot.assertNotEmitted(window.job_submitted, wait=500):  # no listing again behind the warning
        pass
    assert warnings == ["Could not read the cache: Permission denied"]
    assert dialog.total.text() == warnings[0]
