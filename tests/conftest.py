import os
import shutil
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from tests.tiny_models import make_tiny_model

TEXT = "the museum of modern art in amsterdam is a building by van gogh , located close to the square ."


def pytest_configure(config):
    """One model cache for the whole run, outside the user's home: the default model is dequantised once."""
    config._hsviewer_cache = tempfile.mkdtemp(prefix="hsviewer-test-cache-")
    os.environ["HSVIEWER_CACHE_DIR"] = config._hsviewer_cache


def pytest_unconfigure(config):
    shutil.rmtree(getattr(config, "_hsviewer_cache", ""), ignore_errors=True)


@pytest.fixture(scope="session")
def shared_cache():
    return os.environ["HSVIEWER_CACHE_DIR"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny Llama saved once per session; tests must not change it."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from hsviewer.core import load_model

    return load_model(str(tiny_model_dir), device="cpu")


@pytest.fixture
def text():
    return TEXT


def replace_file(path, data: bytes) -> None:
    """A new file renamed over the old one, as damage between sessions leaves it: a loaded
    model memory-maps its weights file, and writing into that mapping would corrupt it live."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    tmp.replace(path)
