import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from tests.tiny_models import make_tiny_model  # noqa: E402

TEXT = "the museum of modern art in amsterdam is a building by van gogh , located close to the square ."


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


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Keep each test's model cache and settings out of the user's home."""
    monkeypatch.setenv("HSVIEWER_CACHE_DIR", os.environ.get("HSVIEWER_TEST_CACHE_DIR", str(tmp_path / "cache")))
