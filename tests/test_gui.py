"""The desktop app on a tiny model, offscreen: tabs, live slider, sweep, cancel, close, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from hsviewer.gui.main_window import MainWindow
from tests.support import TIMEOUT_MS, drop, hold_sweep, wait_job

# The fixtures `settings`, `window` (the real main window, errors recorded) and `loaded` are in conftest.py.


@pytest.fixture
def image_file(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = (rng.random((48, 64)) * 255).astype(np.uint8)
    path = tmp_path / "noise.png"
    Image.fromarray(pixels).save(path)
    return path


def test_window_opens_with_its_tabs_and_menus(window):
    tabs = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert tabs == ["Image SVD", "Hidden state", "Layer sweep", "Runs"]
    actions = {a.text().replace("&", ""): a for menu in window.menuBar().actions() for a in menu.menu().actions()}
    for name in ("Open image…", "Open image URL…", "Choose model…", "Export figure…", "Export data…", "Quit"):
        assert name in actions
    assert actions["Quit"].shortcut().toString() == "Ctrl+Q"
    assert "About hsviewer" in actions


def test_gui_modules_import_neither_torch_nor_pyqtgraph_before_the_window():
    code = (
        "import sys, hsviewer.gui.main_window; print(sorted({'torch', 'transformers', 'pyqtgraph'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_building_the_tabs_leaves_torch_to_the_worker():
    """The tabs are built on the GUI thread after the window shows: importing torch there would freeze it."""
    code = (
        "from PySide6.QtWidgets import QApplication; app = QApplication([]);"
        "import sys; from hsviewer.gui.main_window import MainWindow; w = MainWindow(); w.close();"
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_k_slider_changes_the_reconstruction(qtbot, window, image_file):
    with wait_job(qtbot, window, "image"):
        window.open_image(str(image_file))
    tab = window.image_tab
    svd = tab.result
    tab.slider.setValue(1)
    one = tab.current_reconstruction().copy()
    np.testing.assert_allclose(one, svd.reconstruction(1), atol=1e-2)
    with qtbot.waitSignal(tab.reconstructed, check_params_cb=lambda k: k == 20):
        tab.slider.setValue(20)
    twenty = tab.current_reconstruction()
    assert not np.allclose(one, twenty)
    np.testing.assert_allclose(twenty, svd.reconstruction(20), atol=1e-2)
    assert tab.k_spin.value() == 20
    assert "k = 20 of 48" in tab.info.text()
    assert tab.variance.value() == pytest.approx(svd.variance_kept(20), abs=0.005)  # not the stale 98%


def test_zooming_one_image_zooms_its_neighbours(qtbot, window, image_file):
    with wait_job(qtbot, window, "image"):
        window.open_image(str(image_file))
    tab = window.image_tab
    tab.reconstruction.plot.getViewBox().setRange(xRange=(10, 20), yRange=(5, 15), padding=0)
    for heatmap in (tab.original, tab.residual):
        (x0, x1), (y0, y1) = heatmap.plot.getViewBox().viewRange()
        assert x0 <= 10 < 20 <= x1 and y0 <= 5 < 15 <= y1  # the same cells, whatever the panel's aspect
        assert x1 - x0 < 30 and y1 - y0 < 30  # zoomed in from the whole 64 x 48 image


def test_variance_field_sets_k(qtbot, window, image_file):
    from hsviewer.core.linalg.lowrank import components_for_threshold

    with wait_job(qtbot, window, "image"):
        window.open_image(str(image_file))
    tab = window.image_tab
    tab.variance.setValue(50.0)
    tab.variance.editingFinished.emit()
    expected = components_for_threshold(tab.result.s, 50.0)
    assert tab.slider.value() == expected
    assert tab.result.variance_kept(expected) >= 50.0


def test_bad_image_gives_an_error_dialog_and_the_app_keeps_working(qtbot, window, tmp_path, image_file):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a png")
    with qtbot.waitSignal(window.error_occurred, timeout=TIMEOUT_MS):
        window.open_image(str(bad))
    assert len(window.errors) == 1
    assert "bad.png" in window.errors[0]
    assert "Traceback" not in window.errors[0]
    with wait_job(qtbot, window, "image"):
        window.open_image(str(image_file))
    assert window.image_tab.result.image.shape == (48, 64)
    assert not window.busy()


def test_bad_model_gives_an_error_and_a_good_one_still_loads(qtbot, window, tmp_path, tiny_model_dir):
    with qtbot.waitSignal(window.error_occurred, timeout=TIMEOUT_MS):
        window.load_model(str(tmp_path / "no-such-model"))
    assert "no-such-model" in window.errors[0]
    with qtbot.waitSignal(window.model_loaded, timeout=TIMEOUT_MS) as blocker:
        window.load_model(str(tiny_model_dir))
    assert blocker.args[0].n_layers == 3
    assert window.hidden_tab.layer.maximum() == 2


def test_hidden_state_tab_draws_every_panel(qtbot, loaded):
    tab = loaded.hidden_tab
    tab.layer.setValue(1)
    with wait_job(qtbot, loaded, "hidden"):
        tab.run()
    r = tab.result
    assert r.layer == 1
    tokens = len(r.tokens)
    for heatmap in (tab.original, tab.reconstructed, tab.difference):
        assert heatmap.image.image.shape == (tokens, 32)
    levels = {h.bar.levels() for h in (tab.original, tab.reconstructed, tab.difference)}
    assert len(levels) == 1  # shared colour levels
    _, y = tab.norm_curve.getData()
    np.testing.assert_allclose(y, r.diff_norms)
    assert tab.layer_line.value() == 1
    assert f"r = {tab.result.correlation:.5f}" in tab.scatter.titleLabel.text
    assert tab.original.plot.getAxis("left").labels[0] == r.tokens[0].strip()
    text = tab.hover_text("Original", 2, 5, 0.25)
    assert text.startswith("Original: layer 1, token 2") and repr(r.tokens[2]) in text
    assert f"k = {r.components}," in tab.reconstructed.plot.titleLabel.text  # k, not r: r is the correlation
    assert "(centred)" in tab.spectrum.plot.titleLabel.text
    tab.form.centering.setCurrentIndex(tab.form.centering.findData("none"))
    with wait_job(qtbot, loaded, "hidden"):
        tab.run()
    assert "(not centred)" in tab.spectrum.plot.titleLabel.text
    assert "Out of date" not in tab.summary.text()
    tab.layer.setValue(2)
    assert tab.summary.text().startswith("<b>Out of date:</b>")  # the plots still show layer 1
    with wait_job(qtbot, loaded, "hidden"):
        tab.run()
    assert tab.result.layer == 2 and "Out of date" not in tab.summary.text()


def test_sweep_runs_to_the_end_and_shows_each_layer(qtbot, loaded, tmp_path):
    import json

    tab = loaded.sweep_tab
    tab.grid_field.setText("80, 99")
    tab.control_boxes["shuffled"].setChecked(True)
    shown = []
    tab.layer_shown.connect(lambda label, layer: shown.append((label, layer)))
    with wait_job(qtbot, loaded, "sweep"):
        tab.run()
    assert shown == [("", 0), ("", 1), ("", 2), ("shuffled", 0), ("shuffled", 1), ("shuffled", 2)]
    result = tab.result
    assert not result.cancelled and len(result.layers) == 3
    assert np.isfinite(tab.tokens_map.image.image).all()
    grid = tab.grid_map.image.image
    assert grid.shape == (3, 2)
    np.testing.assert_allclose(grid, np.array(result.grid_dict()["loss_change"]), atol=1e-5)
    assert tab.clean_line.value() == pytest.approx(result.clean_loss)
    assert len(tab.curves["shuffled"]["loss"].getData()[0]) == 3
    shuffled = result.controls["shuffled"].clean_loss  # shuffled tokens: a clean loss of their own, drawn
    assert abs(shuffled - result.clean_loss) > 1e-6
    assert [line.value() for line in tab.control_clean_lines.values()] == [pytest.approx(shuffled)]
    assert list(tab.control_clean_lines) == ["clean (shuffled tokens)"]
    loaded.tabs.setCurrentWidget(tab)
    loaded.export_data(str(tmp_path / "sweep.json"))
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert len(data["layers"]) == 3 and "grid" in data and "shuffled" in data["controls"]
    loaded.export_data(str(tmp_path / "sweep.csv"))
    rows = (tmp_path / "sweep.csv").read_text().splitlines()
    assert len(rows) == 1 + 6 and rows[0].startswith("run,layer,components")


def test_ctrl_r_runs_the_shown_tabs_own_action(qtbot, loaded):
    loaded.tabs.setCurrentWidget(loaded.sweep_tab)
    with wait_job(qtbot, loaded, "sweep"):
        qtbot.keyClick(loaded.sweep_tab, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert loaded.sweep_tab.result is not None and loaded.hidden_tab.result is None
    loaded.tabs.setCurrentWidget(loaded.hidden_tab)
    with wait_job(qtbot, loaded, "hidden"):
        qtbot.keyClick(loaded.hidden_tab, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert loaded.hidden_tab.result is not None


def test_cancel_stops_a_sweep_between_layers(qtbot, loaded):
    held = hold_sweep(loaded)
    with wait_job(qtbot, loaded, "sweep"):
        loaded.sweep_tab.run()
        qtbot.waitUntil(held.is_set, timeout=TIMEOUT_MS)
        assert loaded.cancel_button.isEnabled()
        loaded.cancel_button.click()
    result = loaded.sweep_tab.result
    assert result.cancelled
    assert len(result.layers) == 1
    assert "cancelled after 1 of 3" in loaded.sweep_tab.summary.text()


def test_closing_during_a_sweep_stops_the_worker_cleanly(qtbot, loaded, qtlog):
    held = hold_sweep(loaded)
    loaded.sweep_tab.run()
    qtbot.waitUntil(held.is_set, timeout=TIMEOUT_MS)
    loaded.close()
    for worker in (loaded.model_worker, loaded.image_worker):
        assert worker._thread.isFinished()
    assert not any("QThread" in record.message for record in qtlog.records)


def test_about_names_the_version_model_and_licence(loaded):
    import hsviewer
    from hsviewer.gui.dialogs import about_text
    from hsviewer.state.model import licence

    info = loaded.model_info
    text = about_text(info.name, info.licence)
    assert hsviewer.__version__ in text and info.name in text and "not stated" in text
    assert "Apache-2.0" in licence("default")


def test_export_figure_writes_png_and_svg(qtbot, window, image_file, tmp_path):
    from hsviewer.core import HsviewerError

    with wait_job(qtbot, window, "image"):
        window.open_image(str(image_file))
    window.export_figure(str(tmp_path / "all.png"))
    window.export_figure(str(tmp_path / "spectrum.svg"), "Singular-value spectrum")
    assert (tmp_path / "all.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "spectrum.svg").read_bytes()
    with pytest.raises(HsviewerError):
        window.export_figure(str(tmp_path / "figure.gif"))


def test_dropping_an_image_file_opens_it(qtbot, window, image_file):
    with wait_job(qtbot, window, "image"):
        drop(window, image_file)
    assert window.tabs.currentWidget() is window.image_tab
    assert window.image_tab.source == str(image_file)


def test_settings_survive_a_restart_and_bad_values_fall_back(qtbot, settings):
    first = MainWindow(settings)
    qtbot.addWidget(first)
    first.hidden_tab.text.setPlainText("the museum is close to the square")
    first.hidden_tab.form.threshold.setValue(90.0)
    first.sweep_tab.grid_field.setText("80,90")
    first.close()
    settings.set("hidden/layer", "not a number")
    second = MainWindow(settings)
    qtbot.addWidget(second)
    assert second.hidden_tab.text.toPlainText() == "the museum is close to the square"
    assert second.hidden_tab.form.threshold.value() == 90.0
    assert second.sweep_tab.grid_field.text() == "80,90"
    assert second.hidden_tab.layer.value() == 4
    second.close()


def test_grid_thresholds_parse_and_reject_nonsense():
    from hsviewer.core import HsviewerError
    from hsviewer.gui.sweep_tab import parse_grid

    grid = parse_grid("80, 90;95%", "column")
    assert [g.threshold for g in grid] == [80.0, 90.0, 95.0]
    assert {g.centering for g in grid} == {"column"}
    assert parse_grid("  ", "double") == []
    with pytest.raises(HsviewerError):
        parse_grid("eighty", "double")
    with pytest.raises(HsviewerError):
        parse_grid("120", "double")


def test_screenshots_mode_saves_one_png_per_tab(tmp_path, tiny_model_dir, capfd):
    from hsviewer.gui.app import main

    out = tmp_path / "shots"
    assert main(screenshots=str(out), model=str(tiny_model_dir)) == 0
    for name in ("image_svd.png", "hidden_state.png", "layer_sweep.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert "hsviewer ready" in capfd.readouterr().err


GARBAGE_PROBE = """
import gc, sys, threading
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication
from hsviewer.gui.main_window import MainWindow
app = QApplication([])
window = MainWindow()  # switches automatic collection off; the GUI thread collects on a timer
freed_in = []
garbage = QObject()
garbage.cycle = garbage
garbage.destroyed.connect(lambda: freed_in.append(threading.current_thread().name), Qt.ConnectionType.DirectConnection)
del garbage
kept = []  # live containers, enough to set off collections
worker = threading.Thread(target=lambda: kept.extend([] for _ in range(100_000)), name="worker")
worker.start()
worker.join()
QTimer.singleShot(10_000, app.quit)
check = QTimer(interval=50, timeout=lambda: freed_in and app.quit())
check.start()
app.exec()
print(freed_in)
window.close()
"""


def test_garbage_qt_objects_are_freed_on_the_gui_thread_not_a_worker(tmp_path):
    """A widget freed by a collection on a worker thread crashes the app, so only the GUI thread collects.
    In a process of its own: a collection here would also free what earlier tests left behind."""
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HSVIEWER_DATA_DIR": str(tmp_path / "data"),
    }
    run = subprocess.run([sys.executable, "-c", GARBAGE_PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "['MainThread']"


# --- issue 10 --------------------------------------------------------------------------------

CLOSED_PORT_URL = "http://127.0.0.1:9/x.png"  # nothing listens on the discard port: refused at once


def test_failed_url_keeps_the_last_image_and_a_downsample_change_reloads_it_once(
    qtbot, window, settings, image_file, no_proxy
):
    tab = window.image_tab
    with wait_job(qtbot, window, "image"):
        window.open_image(str(image_file))
    good_info = tab.info.text()
    submitted = []
    window.job_submitted.connect(lambda job: submitted.append(job.name))
    # A modal dialog takes the focus from the spin box, which then emits editingFinished again.
    thief = window.hidden_tab.text

    def modal_dialog(message):
        window.errors.append(message)
        thief.setFocus()

    window.show_error = modal_dialog
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    with qtbot.waitSignal(window.error_occurred, timeout=TIMEOUT_MS):
        window.open_image(CLOSED_PORT_URL)
    qtbot.waitUntil(lambda: not window.busy())
    assert tab.source == str(image_file)  # the last image that worked
    assert tab.info.text() == good_info
    tab.save_settings(settings)
    assert settings.get("image/last", "", str) == str(image_file)

    tab.downsample.setFocus()
    qtbot.waitUntil(tab.downsample.hasFocus)
    tab.downsample.setValue(2)
    with wait_job(qtbot, window, "image"):
        qtbot.keyClick(tab.downsample, Qt.Key.Key_Return)
    with qtbot.assertNotEmitted(window.job_submitted, wait=200):
        thief.setFocus()  # focus leaves the spin box: no second load
    with qtbot.assertNotEmitted(window.job_submitted, wait=200):
        tab.downsample.editingFinished.emit()  # nor when it fires again for the same value
    assert not window.busy()
    assert submitted == ["image", "image"]
    assert len(window.errors) == 1 and "127.0.0.1" in window.errors[0]
    assert tab.source == str(image_file)
    assert tab.result.image.shape == (24, 32)


def test_ctrl_u_opens_the_url_dialog_from_a_focused_spin_box_on_x11(tmp_path):
    """On X11 a line edit claims Ctrl+U ("delete to start of line") before the window's shortcut sees it;
    offscreen Qt has no such binding, so this runs the real xcb platform on a virtual X server."""
    import json
    import shutil

    from tests.support import xvfb_display

    if shutil.which("Xvfb") is None:
        pytest.skip("needs Xvfb")
    with xvfb_display() as display:
        env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": display, "HOME": str(tmp_path)}
        probe = subprocess.run(
            [sys.executable, "-m", "tests.shortcut_probe", str(tmp_path / "settings.ini")],
            capture_output=True, text=True, env=env, timeout=120, cwd=Path(__file__).parent.parent,
        )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    for box, found in seen.items():
        assert found["focus"], box
        assert found["asked"] == 1, (box, found)  # File > Open image URL… ran
        assert found["after"] == found["before"], (box, found)  # and the number was not erased


def _displayed_aspect(viewbox):
    """Data units per screen pixel across over those down: 1 when a pixel of the image is square."""
    (x0, x1), (y0, y1) = viewbox.viewRange()
    size = viewbox.size()
    return ((x1 - x0) / size.width()) / ((y1 - y0) / size.height())


def test_the_three_image_panels_show_the_same_square_pixels(qtbot, window, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    path = tmp_path / "photo.png"
    Image.fromarray((rng.random((400, 600)) * 255).astype(np.uint8)).save(path)
    window.resize(1280, 800)
    tab = window.image_tab
    with wait_job(qtbot, window, "image"):
        window.open_image(str(path))
    qtbot.wait(100)  # the layout settles
    panels = (tab.original, tab.reconstruction, tab.residual)
    boxes = [h.plot.getViewBox() for h in panels]
    ranges = [np.array(b.viewRange()) for b in boxes]
    for r in ranges[1:]:
        np.testing.assert_allclose(r, ranges[0], atol=0.5)
    (x0, x1), (y0, y1) = ranges[0]
    assert x0 <= 0.5 and x1 >= 599.5 and y0 <= 0.5 and y1 >= 399.5  # the whole image
    for box in boxes:
        assert _displayed_aspect(box) == pytest.approx(1.0, rel=0.02)
    boxes[1].scaleBy((0.5, 0.5))  # a linked zoom
    qtbot.wait(50)
    ranges = [np.array(b.viewRange()) for b in boxes]
    for r in ranges[1:]:
        np.testing.assert_allclose(r, ranges[0], atol=0.5)
    assert ranges[0][0][1] - ranges[0][0][0] < 400  # zoomed in
    for box in boxes:
        assert _displayed_aspect(box) == pytest.approx(1.0, rel=0.02)


def _unreachable_panels(tab):
    """The panels lying (partly) outside what the user can see or scroll to."""
    from PySide6.QtWidgets import QScrollArea

    area = tab.graphics
    reach = area.rect()
    parent = area.parentWidget()
    scroll = parent.parentWidget() if parent is not None else None
    if isinstance(scroll, QScrollArea):  # the viewport plus the scrollable range
        viewport = scroll.viewport().size()
        assert reach.width() <= viewport.width() + scroll.horizontalScrollBar().maximum() + 1
        assert reach.height() <= viewport.height() + scroll.verticalScrollBar().maximum() + 1
    missing = []
    for name, item in tab.plots().items():
        rect = area.mapFromScene(item.sceneBoundingRect()).boundingRect()
        if not reach.adjusted(-1, -1, 1, 1).contains(rect):
            missing.append(name)
    return missing


@pytest.mark.parametrize("size", [(1024, 700), (1280, 800)])
def test_every_panel_of_every_tab_is_reachable_in_a_small_window(qtbot, loaded, size):
    with wait_job(qtbot, loaded, "hidden"):
        loaded.hidden_tab.run()  # long titles, token axes
    loaded.resize(*size)
    for index in range(loaded.tabs.count()):
        loaded.tabs.setCurrentIndex(index)
        qtbot.wait(100)  # layouts settle
        tab = loaded.tabs.currentWidget()
        assert _unreachable_panels(tab) == [], loaded.tabs.tabText(index)
        for item in tab.plots().values():
            box = item.getViewBox().size()
            assert box.width() >= 60 and box.height() >= 40  # a usable plot, not a sliver


def test_the_window_fits_the_screen_at_first_start_and_after_a_bigger_one(qtbot, settings):
    from PySide6.QtCore import QRect
    from PySide6.QtGui import QGuiApplication

    first = MainWindow(settings)  # no saved geometry
    qtbot.addWidget(first)
    assert QGuiApplication.primaryScreen().availableGeometry().contains(first.frameGeometry())
    first.close()
    big = MainWindow(settings)
    qtbot.addWidget(big)
    big.setGeometry(QRect(0, 0, 1600, 1000))
    big.close()  # saves the geometry
    window = MainWindow(settings)
    qtbot.addWidget(window)
    free = QGuiApplication.primaryScreen().availableGeometry()
    assert free.width() < 1600  # the offscreen screen is 800 x 800
    assert free.contains(window.frameGeometry())
    window.close()


def test_the_window_fits_again_once_the_window_manager_has_framed_it(qtbot, settings):
    # Before its first show a window has no frame: fitted then, a window as tall as the screen lost
    # its status bar under the bottom edge once the title bar was added.
    from PySide6.QtGui import QGuiApplication

    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.frameGeometry().size() != window.geometry().size())  # framed
    bottom = QGuiApplication.primaryScreen().availableGeometry().bottom()  # 800 x 800, narrower than the window
    qtbot.waitUntil(lambda: window.frameGeometry().bottom() <= bottom, timeout=10_000)


def test_figure_export_writes_vector_svg_and_scaled_png(qtbot, window, image_file, tmp_path):
    from PIL import Image

    with wait_job(qtbot, window, "image"):
        window.open_image(str(image_file))
    window.export_figure(str(tmp_path / "spectrum.svg"), "Singular-value spectrum")
    line_svg = (tmp_path / "spectrum.svg").read_text()
    assert "<image" not in line_svg  # curves and markers as paths, no bitmaps
    assert line_svg.count("<path") > 10
    window.export_figure(str(tmp_path / "u.svg"), "U")
    assert (tmp_path / "u.svg").read_text().count("<image") == 1  # the heatmap as one embedded image
    window.export_figure(str(tmp_path / "all.svg"))
    assert (tmp_path / "all.svg").read_text().count("<image") == 6  # six heatmaps
    window.export_figure(str(tmp_path / "one.png"), "Singular-value spectrum", scale=1)
    window.export_figure(str(tmp_path / "two.png"), "Singular-value spectrum", scale=2)
    one, two = (Image.open(tmp_path / name).size for name in ("one.png", "two.png"))
    assert two == (2 * one[0], 2 * one[1])


def test_a_missing_xcb_library_gives_a_hint_naming_the_apt_packages():
    from hsviewer.gui.app import xcb_hint

    no_cursor = lambda library: "cursor" not in library  # noqa: E731
    hint = xcb_hint({"DISPLAY": ":0"}, no_cursor)
    assert hint is not None and "\n" not in hint
    assert "sudo apt install libxcb-cursor0" in hint and "libxcb-icccm4" not in hint
    assert xcb_hint({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, no_cursor) == hint
    assert xcb_hint({"DISPLAY": ":0"}, lambda library: True) is None  # nothing missing
    assert xcb_hint({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, no_cursor) is None
    assert xcb_hint({}, no_cursor) is None  # no X display: Qt would not use xcb


def test_the_window_can_be_as_small_as_1024_by_700(window):
    window.image_tab.info.setText("/a/long/path/" * 40)  # a long source in the info line
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 700
