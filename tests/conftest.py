import os
import shutil
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from tests.support import LOAD_TIMEOUT_MS, TEXT
from tests.tiny_models import make_tiny_model

pytest_plugins = ("pytester",)  # test_fixtures.py runs the fixtures here in a pytest of its own


def pytest_configure(config):
    """One model cache for the whole run, outside the user's home: the default model is dequantised once."""
    config._hsviewer_cache = tempfile.mkdtemp(prefix="hsviewer-test-cache-")
    os.environ["HSVIEWER_CACHE_DIR"] = config._hsviewer_cache
    config._hsviewer_data = tempfile.mkdtemp(prefix="hsviewer-test-data-")  # the runs library, never the user's
    os.environ["HSVIEWER_DATA_DIR"] = config._hsviewer_data


def pytest_unconfigure(config):
    shutil.rmtree(getattr(config, "_hsviewer_cache", ""), ignore_errors=True)
    shutil.rmtree(getattr(config, "_hsviewer_data", ""), ignore_errors=True)


@pytest.fixture(autouse=True)
def own_runs_library(tmp_path_factory, monkeypatch):
    """Each test saves its runs to a library of its own: a window restores the last runs it finds."""
    monkeypatch.setenv("HSVIEWER_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report kept on the test (item.report_call...), for fixtures' teardown to read."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def shared_cache():
    return os.environ["HSVIEWER_CACHE_DIR"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny Llama saved once per session; tests must not change it."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny models of every architecture (tests.core_helpers.TinyModels), each built on first use."""
    from tests.core_helpers import TinyModels

    return TinyModels(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def tiny_folder(tiny_models):
    """arch -> the folder of a saved tiny model of that architecture, built once per session."""
    return tiny_models.folder


@pytest.fixture(scope="session")
def tiny_handle(tiny_models):
    """arch -> that tiny model loaded through the user's path, once per session; tests must not change it."""
    return tiny_models.handle


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from hsviewer.core import load_model

    return load_model(str(tiny_model_dir), device="cpu")


@pytest.fixture
def text():
    return TEXT


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Every module runs torch on one intra-op thread, and gets back the count it found.

    Tests run small models on shared, busy cores, where two threads spin against each other
    (70x slower with tiny models); a command under test that sets its own count (--threads)
    does not leak into the next module.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_proxy(monkeypatch):
    """Requests to the local test server go straight to it, whatever proxy the environment names."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch, tiny_model_dir):
    """The default model is a .gguf whose 'dequantisation' writes a tiny Llama (and counts the builds).

    Returns the .gguf path and the list of folders built so far.
    """
    from hsviewer.core.model import default as default_model
    from hsviewer.core.model import gguf_cache

    gguf = tmp_path / "default.gguf"
    gguf.write_bytes(b"GGUF" + bytes(64))
    builds = []

    def build(path, folder, key, dtype="float32"):
        # A copy of a model built on the main thread: the worker thread only does file I/O.
        shutil.copytree(tiny_model_dir, folder)
        gguf_cache.write_manifest(folder, key, path, dtype)
        builds.append(folder)
        yield from ()  # the real build is a generator of Progress events

    monkeypatch.setattr(gguf_cache, "build", build)
    monkeypatch.setattr(default_model, "default_gguf_path", lambda: gguf)
    monkeypatch.setenv("HSVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    return gguf, builds


@pytest.fixture
def settings(tmp_path):
    """The app's settings in a fresh file of the test's own (a module may override this)."""
    from PySide6.QtCore import QSettings

    from hsviewer.gui.settings import Settings

    return Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def make_window(request, qtbot):
    """A factory of real main windows, as napari's make_napari_viewer: make_window(settings=None).

    Each window is tests.support.make_window's (shown, errors recorded in window.errors), on the
    test's `settings` unless given others. At teardown every window made is closed and its worker
    threads are waited for; then the test fails if a top-level widget is left shown that was not
    shown before it began (widgets registered with qtbot are closed by pytest-qt, and not counted).
    A test that already failed is not failed again for what it left open (napari does the same).
    """
    from PySide6.QtWidgets import QApplication

    from tests import support

    before = support.visible_top_level_widgets()
    made = []

    def make(settings=None):
        w = support.make_window(qtbot, request.getfixturevalue("settings") if settings is None else settings)
        made.append(w)
        return w

    yield make
    for w in made:
        support.close_window(qtbot, w)
    QApplication.processEvents()
    # pytest-qt closes the widgets registered with qtbot before fixtures tear down (4.x); were it after,
    # they would still be shown here, and are not leaks
    owned = [ref() for ref, _ in getattr(request.node, "qt_widgets", [])]
    leaked = support.leaked_widgets(before, [w for w in owned if w is not None])
    for widget in leaked:
        widget.close()  # so one leak fails one test, not every test after it
    call = getattr(request.node, "report_call", None)
    if leaked and call is not None and call.passed:
        pytest.fail(f"Widgets leaked: {support.describe_widgets(leaked)}", pytrace=False)


@pytest.fixture
def window(make_window, settings):
    """The real main window on `settings`, its error dialogs recorded in window.errors instead of shown."""
    return make_window(settings)


@pytest.fixture
def loaded(qtbot, window, tiny_model_dir):
    """`window` with the tiny model loaded."""
    with qtbot.waitSignal(window.model_loaded, timeout=LOAD_TIMEOUT_MS):
        window.load_model(str(tiny_model_dir))
    return window
