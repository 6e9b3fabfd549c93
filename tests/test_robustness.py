"""Robustness: every bad input of the issue, through the real window and through the CLI.

Each bad input must give a clear message (a dialog in the GUI, exit 2 and one line from the
CLI), and leave the app working with nothing lost: afterwards a good input still succeeds,
the loaded model and the last result are kept, and settings and exported files are written
whole or not at all (no half-written file, no temporary file left behind).
"""

from __future__ import annotations

import configparser
import contextlib
import io
import json
import resource
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings

import hsviewer.core.model.loading
from hsviewer.cli import main as cli_main
from hsviewer.core.analyses.image import run as image_module
from hsviewer.core.events import Progress
from hsviewer.core.model import gguf_cache
from hsviewer.gui.main_window import MainWindow
from hsviewer.gui.settings import Settings
from tests.support import (
    HOLD_S,
    TEXT,
    TIMEOUT_MS,
    drop,
    hold_sweep,
    local_server,
    make_window,
    png_header_only,
    replace_file,
    wait_job,
)
from tests.tiny_models import make_tiny_bert

pytestmark = pytest.mark.usefixtures("no_proxy")  # the URL tests reach a local server directly

LONG_TEXT = " ".join([TEXT] * 6)  # about 120 tokens; the tiny models' context is 64
BIG_SIZE = (7300, 5500)  # 40 megapixels


# --- helpers ---------------------------------------------------------------------------------


def cli(capsys, *args) -> tuple[int, str, str]:
    code = cli_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_cli_error(code: int, err: str, words: str) -> None:
    """Exit 2 and exactly one 'hsviewer: error:' line, the last one, naming the problem."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert [line for line in lines if line.startswith("hsviewer: error:")] == [lines[-1]]
    assert words.lower() in lines[-1].lower(), lines[-1]
    assert "Traceback" not in err


def assert_clear(message: str, words: str) -> None:
    assert words.lower() in message.lower(), message
    assert "Traceback" not in message and "Unexpected error" not in message, message


def expect_error(qtbot, window, action, words: str) -> str:
    """Run a GUI action that must end in exactly one error dialog naming the problem; the app ends idle."""
    before = len(window.errors)
    with qtbot.waitSignal(window.error_occurred, timeout=TIMEOUT_MS):
        action()
    qtbot.waitUntil(lambda: not window.busy(), timeout=TIMEOUT_MS)
    assert len(window.errors) == before + 1, window.errors
    assert_clear(window.errors[-1], words)
    return window.errors[-1]


def files_in(folder: Path) -> set[str]:
    return {p.name for p in Path(folder).iterdir()}


def open_with_menu(monkeypatch, window, path: Path) -> None:
    """File > Open image… with the file dialog answering path."""
    from hsviewer.gui import main_window

    monkeypatch.setattr(main_window.QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), "Images"))
    window.open_image_dialog()


def open_image_by(entry: str, monkeypatch, window, path: Path) -> None:
    if entry == "menu":
        open_with_menu(monkeypatch, window, path)
    else:
        drop(window, path)


def load_by(entry: str, window, source: str | Path) -> None:
    """Load a model with the Hidden state tab's Load button, or by dropping it on the window."""
    if entry == "button":
        window.hidden_tab.picker.combo.setCurrentText(str(source))
        window.hidden_tab.picker.load.click()
    else:
        drop(window, Path(source))


def set_text(window, text: str) -> None:
    window.hidden_tab.text.setPlainText(text)


@contextlib.contextmanager
def disk_full(limit: int = 64):
    """Every write past `limit` bytes into any file fails (EFBIG), as on a full disk."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


def hold_loading(monkeypatch, window) -> threading.Event:
    """Make the window's model load stop half-way (after its first progress event) until cancelled."""
    real = hsviewer.core.model.loading.iter_load
    held = threading.Event()
    jobs = []
    window.job_submitted.connect(jobs.append)

    def slow_load(spec):
        yield Progress(message=f"Reading {spec.source}")
        job = next(j for j in reversed(jobs) if j.name == "model")
        held.set()
        deadline = time.monotonic() + HOLD_S
        while not job.abort_requested and time.monotonic() < deadline:
            time.sleep(0.005)
        yield from real(spec)  # the worker sees the cancel at its first event

    monkeypatch.setattr(hsviewer.core.model.loading, "iter_load", slow_load)
    return held


def noise_png_bytes(height: int = 48, width: int = 64, fmt: str = "PNG") -> bytes:
    pixels = (np.random.default_rng(0).random((height, width)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


# The bad image files: name, bytes (None: no file at all), the words the message must hold.
BAD_IMAGES = {
    "missing": ("missing.png", None, "No image file"),
    "empty": ("empty.png", b"", "empty"),
    "truncated-png": ("cut.png", noise_png_bytes()[:300], "damaged or truncated"),
    "truncated-jpeg": ("cut.jpg", noise_png_bytes(fmt="JPEG")[:400], "damaged or truncated"),
    "text-named-png": ("notes.png", b"This is not a picture.\n" * 20, "not an image"),
    "random-bytes": ("noise.jpg", np.random.default_rng(1).bytes(4096), "not an image"),
    "decompression-bomb": ("bomb.png", png_header_only(100_000, 100_000), "decompression bomb"),
}


def write_bad_image(folder: Path, kind: str) -> tuple[Path, str]:
    name, data, words = BAD_IMAGES[kind]
    path = folder / name
    if data is not None:
        path.write_bytes(data)
    return path, words


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def settings_path(tmp_path) -> Path:
    return tmp_path / "settings" / "hsviewer.ini"


@pytest.fixture
def settings(settings_path):
    """conftest's `settings` (and so `window` and `loaded`) on a file the tests here can find and damage."""
    return Settings(QSettings(str(settings_path), QSettings.Format.IniFormat))


@pytest.fixture(scope="module")
def shared_window(qapp, tmp_path_factory, tiny_model_dir):
    """One window with the tiny model loaded, shared by the tests that leave it idle (see `app`)."""
    path = tmp_path_factory.mktemp("shared-settings") / "hsviewer.ini"
    w = make_window(None, Settings(QSettings(str(path), QSettings.Format.IniFormat)))
    w.load_model(str(tiny_model_dir))
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while (w.model_info is None or w.busy()) and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.005)
    assert w.model_info is not None and not w.errors, w.errors
    yield w
    w.close()


@pytest.fixture
def app(qtbot, shared_window, tiny_model_dir):
    """The shared window, idle, with the tiny model, the default text and thresholds, no errors yet."""
    w = shared_window
    qtbot.waitUntil(lambda: not w.busy(), timeout=TIMEOUT_MS)
    assert w.model_info.source == str(tiny_model_dir)
    w.errors.clear()
    set_text(w, TEXT)
    for form in (w.hidden_tab.form, w.sweep_tab.form):
        form.mode.setCurrentIndex(0)
        form.threshold.setValue(95.0)
    w.image_tab.variance.setValue(98.0)
    w.hidden_tab.layer.setValue(1)
    w.sweep_tab.grid_field.setText("")
    for box in w.sweep_tab.control_boxes.values():
        box.setChecked(False)
    yield w
    qtbot.waitUntil(lambda: not w.busy(), timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def good_image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("good") / "noise.png"
    path.write_bytes(noise_png_bytes())
    return path


@pytest.fixture(scope="module")
def big_photo(tmp_path_factory) -> Path:
    """A 7300 x 5500 (40-megapixel) colour JPEG: a cheap gradient with noise."""
    width, height = BIG_SIZE
    rng = np.random.default_rng(0)
    x = np.linspace(0, 200, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 55, height, dtype=np.float32)[:, None]
    gray = (x + y + rng.integers(0, 16, (height, 1), dtype=np.uint8)).astype(np.uint8)
    channels = [Image.fromarray(gray), Image.fromarray(255 - gray), Image.fromarray(gray[::-1])]
    path = tmp_path_factory.mktemp("big") / "photo.jpg"
    Image.merge("RGB", channels).save(path, quality=85)
    return path


@pytest.fixture(scope="module")
def server():
    routes = {
        "/picture.png": ("image/png", noise_png_bytes()),
        "/page.html": ("text/html; charset=utf-8", b"<html><body>Not a picture</body></html>"),
    }
    with local_server(routes) as url:
        yield url


@pytest.fixture
def silent_url(monkeypatch):
    """A URL whose server accepts the connection and never answers; timeouts cut to half a second."""
    monkeypatch.setattr(image_module, "URL_TIMEOUT_S", (0.5, 0.5))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/slow.png"


BAD_URLS = {"404": ("/missing.png", "404"), "html": ("/page.html", "text/html"), "timeout": (None, "did not answer")}


def bad_url(kind: str, server: str, silent_url: str) -> tuple[str, str]:
    path, words = BAD_URLS[kind]
    return (silent_url if path is None else server + path), words


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory, tiny_model_dir) -> dict[str, tuple[Path, str]]:
    """Model sources that must fail, with the words their message must hold."""
    root = tmp_path_factory.mktemp("bad-models")
    out = {}

    no_config = root / "no-config"
    shutil.copytree(tiny_model_dir, no_config)
    (no_config / "config.json").unlink()
    out["no-config"] = (no_config, "config.json")

    no_weights = root / "no-weights"
    shutil.copytree(tiny_model_dir, no_weights)
    for weights in no_weights.glob("*.safetensors"):
        weights.unlink()
    out["no-weights"] = (no_weights, "no weights")

    corrupt = root / "corrupt-weights"
    shutil.copytree(tiny_model_dir, corrupt)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(b"\xff" * weights.stat().st_size)
    out["corrupt-safetensors"] = (corrupt, "corrupt-weights")

    truncated = root / "truncated-weights"
    shutil.copytree(tiny_model_dir, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    out["truncated-safetensors"] = (truncated, "truncated-weights")

    out["encoder-only"] = (make_tiny_bert(root / "tiny-bert"), "not a causal")

    gguf = root / "garbage.gguf"
    gguf.write_bytes(b"GGUF" + bytes(200))
    out["garbage-gguf"] = (gguf, "garbage.gguf")

    out["missing-folder"] = (root / "no-such-model", "No model folder")
    return out


def damage_cache(builds: list[Path], how: str) -> None:
    """Damage the cache as a crash or a disk error between sessions would.

    Damaged weights are a new file renamed over the old one: the loaded model still
    memory-maps the old file, and writing into that mapping in place would corrupt the
    live model under the app (a crash no user can cause).
    """
    weights = builds[-1] / "model.safetensors"
    if how == "garbled":
        replace_file(weights, b"\xff" * weights.stat().st_size)
    elif how == "truncated":
        replace_file(weights, weights.read_bytes()[:100])
    elif how == "no-manifest":
        (builds[-1] / gguf_cache.MANIFEST).unlink()
    else:  # "no-config"
        (builds[-1] / "config.json").unlink()


# --- images ----------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["menu", "drop"])
@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_gui_bad_image_file(qtbot, app, monkeypatch, tmp_path, good_image, kind, entry):
    with wait_job(qtbot, app, "image"):
        app.open_image(str(good_image))
    shown = app.image_tab.result
    path, words = write_bad_image(tmp_path, kind)
    message = expect_error(qtbot, app, lambda: open_image_by(entry, monkeypatch, app, path), words)
    assert path.name in message
    assert app.image_tab.result is shown  # the last good image stays on screen
    with wait_job(qtbot, app, "image"):
        open_image_by(entry, monkeypatch, app, good_image)
    assert app.image_tab.result.image.shape == (48, 64)
    assert app.errors == [message]


def test_gui_bomb_by_pil_limit(qtbot, app, monkeypatch, tmp_path, good_image):
    """A real picture over PIL's pixel limit (monkeypatched low) is refused as a bomb, not decoded."""
    path = tmp_path / "large.png"
    path.write_bytes(noise_png_bytes(60, 80))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    expect_error(qtbot, app, lambda: app.open_image(str(path)), "decompression bomb")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10**6)
    with wait_job(qtbot, app, "image"):
        app.open_image(str(good_image))


def test_gui_drop_of_a_file_that_is_neither(qtbot, app, tmp_path, good_image):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    expect_error(qtbot, app, lambda: drop(app, path), "neither an image nor a model")
    with wait_job(qtbot, app, "image"):
        drop(app, good_image)


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_cli_bad_image_file(capsys, tmp_path, good_image, kind):
    path, words = write_bad_image(tmp_path, kind)
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text('{"previous": true}\n')
    code, _, err = cli(capsys, "image", path, "--out", out)
    assert_cli_error(code, err, words)
    assert files_in(out) == {"summary.json"}
    assert json.loads((out / "summary.json").read_text()) == {"previous": True}
    assert cli(capsys, "image", good_image, "--out", out)[0] == 0  # still works
    assert json.loads((out / "summary.json").read_text())["shape"] == [24, 32]


def test_gui_40_megapixel_photo_is_downsampled_in_the_worker(qtbot, window, monkeypatch, big_photo):
    real = image_module.image_svd
    threads = []

    def recording_svd(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(image_module, "image_svd", recording_svd)
    with wait_job(qtbot, window, "image"):
        window.open_image(str(big_photo))
        assert window.busy() and window.cancel_button.isEnabled()  # open_image returned at once
    assert threads and threads[0] is not threading.main_thread()
    svd = window.image_tab.result
    assert max(svd.image.shape) <= image_module.MAX_SIDE
    assert svd.downsample > 1
    assert any("7300 x 5500" in w for w in svd.warnings)
    assert "7300 x 5500" in window.image_tab.info.text()  # the notice is shown
    assert window.errors == []


def test_cli_40_megapixel_photo_is_downsampled_with_a_notice(capsys, tmp_path, big_photo):
    code, _, err = cli(capsys, "image", big_photo, "--out", tmp_path / "out")
    assert code == 0, err
    assert "note: Image is 7300 x 5500 pixels: downsampled by" in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert max(summary["shape"]) <= image_module.MAX_SIDE and summary["downsample"] > 2
    assert summary["warnings"]


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(BAD_URLS))
def test_gui_bad_url(qtbot, app, monkeypatch, server, silent_url, kind):
    from hsviewer.gui import dialogs

    url, words = bad_url(kind, server, silent_url)
    monkeypatch.setattr(dialogs, "ask_url", lambda parent: url)
    message = expect_error(qtbot, app, app.open_url_dialog, words)  # File > Open image URL…
    assert url in message
    monkeypatch.setattr(dialogs, "ask_url", lambda parent: server + "/picture.png")
    with wait_job(qtbot, app, "image"):
        app.open_url_dialog()
    assert app.image_tab.result.source == server + "/picture.png"


@pytest.mark.parametrize("kind", list(BAD_URLS))
def test_cli_bad_url(capsys, tmp_path, server, silent_url, kind):
    url, words = bad_url(kind, server, silent_url)
    code, _, err = cli(capsys, "image", url, "--out", tmp_path / "out")
    assert_cli_error(code, err, words)
    assert url in err
    assert not (tmp_path / "out" / "summary.json").exists()
    assert cli(capsys, "image", server + "/picture.png", "--out", tmp_path / "out")[0] == 0


# --- models ----------------------------------------------------------------------------------

# The kinds of bad model source that `bad_models` makes.
BAD_MODELS = (
    "no-config", "no-weights", "corrupt-safetensors", "truncated-safetensors", "encoder-only", "garbage-gguf",
    "missing-folder",
)  # fmt: skip


@pytest.mark.parametrize("entry", ["button", "drop"])
@pytest.mark.parametrize("kind", BAD_MODELS)
def test_gui_bad_model_keeps_the_loaded_one(qtbot, app, bad_models, tiny_model_dir, kind, entry):
    if entry == "drop" and kind == "missing-folder":
        pytest.skip("a path that does not exist cannot be dropped")
    source, words = bad_models[kind]
    recent = app.settings.recent_models()
    message = expect_error(qtbot, app, lambda: load_by(entry, app, source), words)
    assert source.name in message
    # Nothing lost: the model already app stays app and usable, and the bad one is not remembered.
    assert app.model_info.source == str(tiny_model_dir)
    assert app.settings.recent_models() == recent
    with wait_job(qtbot, app, "hidden"):
        app.hidden_tab.run_button.click()
    assert app.hidden_tab.result.n_layers == 3
    if kind == "garbage-gguf":
        assert not list(gguf_cache.cache_root().glob("models/.building-*"))  # no half-built cache left


@pytest.mark.parametrize("kind", BAD_MODELS)
def test_cli_bad_model(capsys, tmp_path, bad_models, kind):
    source, words = bad_models[kind]
    out = tmp_path / "r.json"
    args = ["--model", source, "--text", TEXT, "--layer", 0, "--out", out, "--device", "cpu"]
    code, _, err = cli(capsys, "reduce", *args)
    assert_cli_error(code, err, words)
    assert files_in(tmp_path) == set()


def test_gui_first_load_fails_then_a_good_model_loads(qtbot, window, bad_models, tiny_model_dir):
    expect_error(qtbot, window, lambda: window.load_model(str(bad_models["corrupt-safetensors"][0])), "Could not load")
    assert window.model_info is None
    expect_error(qtbot, window, window.hidden_tab.run, "No model is loaded")
    with qtbot.waitSignal(window.model_loaded, timeout=TIMEOUT_MS):
        load_by("button", window, tiny_model_dir)


@pytest.mark.parametrize("how", ["garbled", "truncated", "no-manifest", "no-config"])
def test_gui_damaged_default_model_cache_is_rebuilt(qtbot, window, fake_gguf, how):
    _, builds = fake_gguf
    with qtbot.waitSignal(window.model_loaded, timeout=TIMEOUT_MS):
        load_by("button", window, "default")
    damage_cache(builds, how)
    with qtbot.waitSignal(window.model_loaded, timeout=TIMEOUT_MS) as blocker:
        load_by("button", window, "default")
    assert len(builds) == 2 and blocker.args[0].n_layers == 3
    assert window.errors == []
    with wait_job(qtbot, window, "hidden"):
        window.hidden_tab.run_button.click()
    assert not list((builds[-1].parent).glob(".building-*"))


def test_gui_damaged_cache_of_a_chosen_gguf_is_rebuilt(qtbot, window, fake_gguf):
    gguf, builds = fake_gguf
    with qtbot.waitSignal(window.model_loaded, timeout=TIMEOUT_MS):
        drop(window, gguf)
    damage_cache(builds, "garbled")
    with qtbot.waitSignal(window.model_loaded, timeout=TIMEOUT_MS):
        drop(window, gguf)
    assert len(builds) == 2 and window.errors == []


@pytest.mark.parametrize("how", ["garbled", "truncated", "no-manifest", "no-config"])
def test_cli_damaged_default_model_cache_is_rebuilt(capsys, tmp_path, fake_gguf, how):
    _, builds = fake_gguf
    args = ["reduce", "--text", TEXT, "--layer", 1, "--device", "cpu", "--out", tmp_path / "r.json"]
    assert cli(capsys, *args)[0] == 0
    damage_cache(builds, how)
    code, _, err = cli(capsys, *args)
    assert code == 0, err
    assert len(builds) == 2
    assert json.loads((tmp_path / "r.json").read_text())["layer"] == 1


# --- texts -----------------------------------------------------------------------------------

BAD_TEXTS = {"empty": ("", "empty"), "blank": ("  \n\t ", "empty"), "one-token": ("museum", "two tokens")}


@pytest.mark.parametrize("tab", ["hidden", "sweep"])
@pytest.mark.parametrize("kind", list(BAD_TEXTS))
def test_gui_bad_text(qtbot, app, kind, tab):
    text, words = BAD_TEXTS[kind]
    set_text(app, text)
    button = app.hidden_tab.run_button if tab == "hidden" else app.sweep_tab.run_button
    expect_error(qtbot, app, button.click, words)
    set_text(app, TEXT)
    with wait_job(qtbot, app, tab):
        button.click()


@pytest.mark.parametrize("tab", ["hidden", "sweep"])
def test_gui_text_longer_than_the_context_is_cut_with_a_notice(qtbot, app, tab):
    set_text(app, LONG_TEXT)
    if tab == "hidden":
        with wait_job(qtbot, app, "hidden"):
            app.hidden_tab.run_button.click()
        result = app.hidden_tab.result
        assert "only the first 64" in app.hidden_tab.summary.text()
    else:
        with wait_job(qtbot, app, "sweep"):
            app.sweep_tab.run_button.click()
        result = app.sweep_tab.result
    assert len(result.tokens) == 64
    assert any("only the first 64" in w for w in result.warnings)
    assert app.errors == []


@pytest.mark.parametrize("command", ["reduce", "sweep"])
@pytest.mark.parametrize("kind", [*BAD_TEXTS, "long"])
def test_cli_texts(capsys, tmp_path, tiny_model_dir, command, kind):
    text, words = BAD_TEXTS.get(kind, (LONG_TEXT, ""))
    out = tmp_path / "out.json"
    layer = ["--layer", 1] if command == "reduce" else []
    code, _, err = cli(capsys, command, "--model", tiny_model_dir, "--text", text, *layer, "--out", out)
    if kind == "long":
        assert code == 0, err
        assert "warning: The text has" in err and "only the first 64" in err
        assert len(json.loads(out.read_text())["tokens"]) == 64
    else:
        assert_cli_error(code, err, words)
        assert not out.exists()


def test_cli_empty_text_file(capsys, tmp_path, tiny_model_dir):
    (tmp_path / "empty.txt").write_text("  \n")
    args = ["--model", tiny_model_dir, "--text-file", tmp_path / "empty.txt", "--out", tmp_path / "s.json"]
    code, _, err = cli(capsys, "sweep", *args)
    assert_cli_error(code, err, "holds no text")


# --- thresholds ------------------------------------------------------------------------------

THRESHOLDS = {"0": 0.0, "100": 100.0, "nan": float("nan"), "negative": -5.0, "over-100": 250.0, "inf": float("inf")}


@pytest.mark.parametrize("field", ["hidden", "sweep", "image"])
def test_gui_threshold_fields_only_hold_percentages(app, field):
    """The spin boxes themselves refuse values outside (0, 100]: a bad value is clamped, never stored."""
    box = {
        "hidden": app.hidden_tab.form.threshold,
        "sweep": app.sweep_tab.form.threshold,
        "image": app.image_tab.variance,
    }[field]
    for kind, value in THRESHOLDS.items():
        box.setValue(value)
        assert 0 < box.value() <= 100, kind
    box.setValue(100.0)
    assert box.value() == 100
    for typed in ("nan", "-5", "0", "abc"):  # typed text the validator does not accept leaves the value alone
        before = box.value()
        box.lineEdit().setText(typed)
        box.interpretText()
        assert box.value() == before


@pytest.mark.parametrize("tab", ["hidden", "sweep"])
def test_gui_threshold_100_runs(qtbot, app, tab):
    form = app.hidden_tab.form if tab == "hidden" else app.sweep_tab.form
    form.threshold.setValue(100.0)
    button = app.hidden_tab.run_button if tab == "hidden" else app.sweep_tab.run_button
    with wait_job(qtbot, app, tab):
        button.click()
    result = app.hidden_tab.result if tab == "hidden" else app.sweep_tab.result.layers[0]
    assert result.variance_kept == pytest.approx(100.0, abs=1e-6)
    assert app.errors == []


@pytest.mark.parametrize("grid", ["0", "nan", "-5", "101", "80, inf", "eighty"])
def test_gui_bad_grid_threshold(qtbot, app, grid):
    """The sweep's grid field takes free text: each bad threshold gets a message, and nothing runs."""
    app.sweep_tab.grid_field.setText(grid)
    app.sweep_tab.result = previous = object()
    expect_error(qtbot, app, app.sweep_tab.run_button.click, "")
    assert "must" in app.errors[-1]
    assert app.sweep_tab.result is previous
    app.sweep_tab.grid_field.setText("100, 50")
    with wait_job(qtbot, app, "sweep"):
        app.sweep_tab.run_button.click()
    assert len(app.sweep_tab.result.grid) == 2


@pytest.mark.parametrize("stored", ["nan", "-5", "1e400", "abc"])
def test_gui_bad_threshold_in_the_settings_file(qtbot, settings, stored):
    settings.set("hidden/threshold", stored)
    settings.set("sweep/threshold", stored)
    settings.set("image/variance", stored)
    settings.store.sync()
    w = make_window(qtbot, settings)
    for box in (w.hidden_tab.form.threshold, w.sweep_tab.form.threshold, w.image_tab.variance):
        assert 0 < box.value() <= 100
    if stored in ("nan", "1e400", "abc"):  # unreadable: the defaults, not a clamped extreme
        assert (w.hidden_tab.form.threshold.value(), w.image_tab.variance.value()) == (95.0, 98.0)
    w.hidden_tab.form.reduction()  # a usable Reduction
    w.close()


@pytest.mark.parametrize("command", ["reduce", "sweep", "image"])
@pytest.mark.parametrize("kind", list(THRESHOLDS))
def test_cli_thresholds(capsys, tmp_path, tiny_model_dir, good_image, command, kind):
    value = {"nan": "nan", "inf": "inf"}.get(kind, f"{THRESHOLDS[kind]:g}")
    out = tmp_path / "out"
    if command == "image":
        args = ["image", good_image, "--variance", value, "--out", out]
    else:
        args = [command, "--model", tiny_model_dir, "--text", TEXT, "--threshold", value, "--out", out]
        args += ["--layer", 0] if command == "reduce" else []
    code, _, err = cli(capsys, *args)
    if kind == "100":
        assert code == 0, err
        data = json.loads((out / "summary.json" if command == "image" else out).read_text())
        kept = data["variance_kept"] if command != "sweep" else data["layers"][0]["variance_kept"]
        assert kept == pytest.approx(100.0, abs=1e-6)
    else:
        assert_cli_error(code, err, "Threshold")
        assert not out.exists()


@pytest.mark.parametrize("grid", ["0", "nan", "-5", "101", "eighty"])
def test_cli_bad_grid_threshold(capsys, tmp_path, tiny_model_dir, grid):
    out = tmp_path / "s.json"
    code, _, err = cli(capsys, "sweep", "--model", tiny_model_dir, "--text", TEXT, "--grid", grid, "--out", out)
    assert_cli_error(code, err, "grid" if grid == "eighty" else "Threshold")
    assert not out.exists()


# --- runs on top of runs, cancel, close ------------------------------------------------------


def test_second_run_while_a_sweep_is_going_is_queued(qtbot, loaded, good_image):
    release = threading.Event()
    held = hold_sweep(loaded, release)
    finished = []
    loaded.job_done.connect(finished.append)
    loaded.sweep_tab.run_button.click()
    qtbot.waitUntil(held.is_set, timeout=TIMEOUT_MS)
    loaded.sweep_tab.run_button.click()  # a second sweep
    loaded.hidden_tab.run_button.click()  # and a hidden-state run
    with wait_job(qtbot, loaded, "image"):  # the image worker is not blocked by the sweep
        loaded.open_image(str(good_image))
    assert loaded.busy()
    release.set()
    qtbot.waitUntil(lambda: not loaded.busy(), timeout=TIMEOUT_MS)
    assert finished == ["image", "sweep", "sweep", "hidden"]
    assert not loaded.sweep_tab.result.cancelled and len(loaded.sweep_tab.result.layers) == 3
    assert loaded.hidden_tab.result is not None
    assert loaded.errors == [] and loaded.status.text() == "Ready"


def test_a_second_model_load_during_a_sweep_waits_for_it(qtbot, loaded, tiny_model_dir):
    release = threading.Event()
    held = hold_sweep(loaded, release)
    loaded.sweep_tab.run_button.click()
    qtbot.waitUntil(held.is_set, timeout=TIMEOUT_MS)
    load_by("button", loaded, tiny_model_dir)
    release.set()
    with qtbot.waitSignal(loaded.model_loaded, timeout=TIMEOUT_MS):
        pass
    qtbot.waitUntil(lambda: not loaded.busy(), timeout=TIMEOUT_MS)
    assert len(loaded.sweep_tab.result.layers) == 3 and loaded.errors == []


def test_cancel_during_loading(qtbot, window, monkeypatch, tiny_model_dir):
    held = hold_loading(monkeypatch, window)
    loaded_models = []
    window.model_loaded.connect(loaded_models.append)
    load_by("button", window, tiny_model_dir)
    qtbot.waitUntil(held.is_set, timeout=TIMEOUT_MS)
    assert window.cancel_button.isEnabled()
    window.cancel_button.click()
    qtbot.waitUntil(lambda: not window.busy(), timeout=TIMEOUT_MS)
    assert window.status.text() == "Model load cancelled"
    assert loaded_models == [] and window.model_info is None and window.model_worker.model is None
    assert window.errors == []
    monkeypatch.undo()
    with qtbot.waitSignal(window.model_loaded, timeout=TIMEOUT_MS):
        load_by("button", window, tiny_model_dir)


def test_cancel_during_loading_keeps_the_previous_model(qtbot, loaded, monkeypatch, tiny_model_dir):
    handle = loaded.model_worker.model
    held = hold_loading(monkeypatch, loaded)
    load_by("button", loaded, tiny_model_dir)
    qtbot.waitUntil(held.is_set, timeout=TIMEOUT_MS)
    loaded.cancel()
    qtbot.waitUntil(lambda: not loaded.busy(), timeout=TIMEOUT_MS)
    assert loaded.model_worker.model is handle
    with wait_job(qtbot, loaded, "hidden"):
        loaded.hidden_tab.run_button.click()


@pytest.mark.parametrize("button", ["status-bar", "sweep-tab"])
def test_cancel_during_a_sweep_then_a_full_sweep(qtbot, loaded, tmp_path, button):
    held = hold_sweep(loaded)
    with wait_job(qtbot, loaded, "sweep"):
        loaded.sweep_tab.run_button.click()
        qtbot.waitUntil(held.is_set, timeout=TIMEOUT_MS)
        if button == "status-bar":
            loaded.cancel_button.click()
        else:
            loaded.sweep_tab.cancel_button.click()
    assert loaded.sweep_tab.result.cancelled and len(loaded.sweep_tab.result.layers) == 1
    loaded.tabs.setCurrentWidget(loaded.sweep_tab)
    loaded.export_data(str(tmp_path / "cancelled.json"))  # a cancelled sweep exports whole
    assert json.loads((tmp_path / "cancelled.json").read_text())["cancelled"] is True
    with wait_job(qtbot, loaded, "sweep"):
        loaded.sweep_tab.run_button.click()
    assert not loaded.sweep_tab.result.cancelled and len(loaded.sweep_tab.result.layers) == 3
    assert loaded.errors == []


def assert_closed_cleanly(w: MainWindow, settings_path: Path, capfd, qtlog) -> None:
    for worker in (w.model_worker, w.image_worker):
        assert worker._thread.isFinished()
    assert w.errors == []
    err = capfd.readouterr().err
    assert "QThread" not in err and "Traceback" not in err
    assert not any("QThread" in record.message for record in qtlog.records)
    stored = QSettings(str(settings_path), QSettings.Format.IniFormat)
    assert stored.status() == QSettings.Status.NoError
    assert float(stored.value("sweep/threshold")) == 90.0  # the settings were saved whole
    assert files_in(settings_path.parent) == {settings_path.name}


def test_closing_during_loading_ten_times(qtbot, settings, settings_path, monkeypatch, tiny_model_dir, capfd, qtlog):
    for _ in range(10):
        w = make_window(qtbot, settings)
        w.sweep_tab.form.threshold.setValue(90.0)
        held = hold_loading(monkeypatch, w)
        load_by("button", w, tiny_model_dir)
        qtbot.waitUntil(held.is_set, timeout=TIMEOUT_MS)
        w.close()
        assert_closed_cleanly(w, settings_path, capfd, qtlog)
        assert w.model_worker.model is None
        monkeypatch.undo()


def test_closing_during_a_sweep_ten_times(qtbot, settings, settings_path, tiny_model_dir, capfd, qtlog):
    for i in range(10):
        w = make_window(qtbot, settings)
        w.sweep_tab.form.threshold.setValue(90.0)
        w.sweep_tab.control_boxes["random"].setChecked(True)  # a longer sweep
        with qtbot.waitSignal(w.model_loaded, timeout=TIMEOUT_MS):
            w.load_model(str(tiny_model_dir))
        held = hold_sweep(w)
        w.sweep_tab.run_button.click()
        if i % 2:  # every other time mid-sweep, after a layer; else while it is queued or in the clean pass
            qtbot.waitUntil(held.is_set, timeout=TIMEOUT_MS)
        w.close()
        assert_closed_cleanly(w, settings_path, capfd, qtlog)


# --- nothing lost: exports and settings ------------------------------------------------------


@pytest.fixture
def with_image(qtbot, window, good_image):
    with wait_job(qtbot, window, "image"):
        window.open_image(str(good_image))
    return window


PREVIOUS = b"previous export, kept whole\n"


@pytest.mark.parametrize("name", ["data.json", "data.csv", "figure.png", "figure.svg"])
def test_gui_export_on_a_full_disk_leaves_the_old_file(with_image, tmp_path, name):
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / name
    target.write_bytes(PREVIOUS)
    export = with_image.export_data if name.startswith("data") else with_image.export_figure
    with disk_full():
        with_image._try(export, str(target))  # what File > Export does with the chosen path
    assert len(with_image.errors) == 1
    assert_clear(with_image.errors[0], "Could not write")
    assert target.read_bytes() == PREVIOUS
    assert files_in(folder) == {name}  # no temporary file left
    export(str(target))  # the disk has room again: the export works
    assert target.read_bytes() != PREVIOUS and target.stat().st_size > len(PREVIOUS)
    if name == "data.json":
        assert json.loads(target.read_text())["shape"] == [48, 64]


@pytest.mark.parametrize("case", ["no-result", "bad-suffix", "folder"])
def test_gui_failed_export_leaves_the_old_file(qtbot, window, tmp_path, good_image, case):
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / ("data.txt" if case == "bad-suffix" else "data.json")
    target.write_bytes(PREVIOUS)
    if case != "no-result":
        with wait_job(qtbot, window, "image"):
            window.open_image(str(good_image))
    if case == "folder":
        (folder / "sub.json").mkdir()
        window._try(window.export_data, str(folder / "sub.json"))
    else:
        window._try(window.export_data, str(target))
    assert len(window.errors) == 1
    assert "Traceback" not in window.errors[0]
    assert target.read_bytes() == PREVIOUS
    assert files_in(folder) <= {target.name, "sub.json"}


def test_settings_written_whole_or_not_at_all(qtbot, settings, settings_path, caplog):
    first = make_window(qtbot, settings)
    first.hidden_tab.form.threshold.setValue(90.0)
    first.sweep_tab.grid_field.setText("80,90")
    first.close()
    before = settings_path.read_bytes()
    second = make_window(qtbot, Settings(QSettings(str(settings_path), QSettings.Format.IniFormat)))
    second.hidden_tab.form.threshold.setValue(42.0)
    second.sweep_tab.grid_field.setText("1,2,3")
    with disk_full(limit=16):
        second.close()  # saving fails half-way
    assert "Could not save the settings" in caplog.text  # in the log, not silently lost
    assert settings_path.read_bytes() == before
    assert files_in(settings_path.parent) == {settings_path.name}
    # The old file is whole and readable (a fresh QSettings in this process would share the unsaved cache).
    stored = configparser.ConfigParser(interpolation=None)
    stored.read_string(before.decode())
    assert float(stored["hidden"]["threshold"]) == 90.0 and stored["sweep"]["grid"] == '"80,90"'


@pytest.mark.parametrize("case", ["out-is-a-file", "parent-is-a-file", "disk-full"])
def test_cli_output_that_cannot_be_written(capsys, tmp_path, tiny_model_dir, good_image, case):
    existing = tmp_path / "existing.json"
    existing.write_bytes(PREVIOUS)
    out = {"out-is-a-file": existing, "parent-is-a-file": existing / "r.json", "disk-full": existing}[case]
    args = ["reduce", "--model", tiny_model_dir, "--text", TEXT, "--layer", 0, "--out", out]
    if case == "out-is-a-file":  # the image command writes a folder
        args = ["image", good_image, "--out", out]
    with disk_full() if case == "disk-full" else contextlib.nullcontext():
        code = cli_main([str(a) for a in args])
    _, err = capsys.readouterr()
    assert_cli_error(code, err, "existing.json")
    assert existing.read_bytes() == PREVIOUS
    assert files_in(tmp_path) == {"existing.json"}
