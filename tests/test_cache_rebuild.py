"""A damaged model cache is rebuilt, never loaded half-way; the GGUF reader is replaced by a tiny model."""

import json
import shutil

import pytest

from hsviewer.core import gguf_cache, load_model
from tests.conftest import replace_file


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch, tiny_model_dir):
    """A .gguf path whose 'dequantisation' writes a tiny Llama and counts the builds."""
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + bytes(64))
    builds = []

    def build(path, folder, key):
        # A copy of a model built on the main thread: the worker thread only does file I/O.
        shutil.copytree(tiny_model_dir, folder)
        files = {p.name: p.stat().st_size for p in folder.iterdir()}
        (folder / gguf_cache.MANIFEST).write_text(json.dumps({"key": key, "files": files}))
        builds.append(folder)

    monkeypatch.setattr(gguf_cache, "build", build)
    monkeypatch.setenv("HSVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    return gguf, builds


def test_second_load_uses_the_cache(fake_gguf):
    gguf, builds = fake_gguf
    load_model(str(gguf), device="cpu")
    load_model(str(gguf), device="cpu")
    assert len(builds) == 1


def test_garbled_weights_of_the_same_size_are_rebuilt(fake_gguf):
    gguf, builds = fake_gguf
    first = load_model(str(gguf), device="cpu")
    weights = builds[-1] / "model.safetensors"
    replace_file(weights, b"\xff" * weights.stat().st_size)
    again = load_model(str(gguf), device="cpu")
    assert len(builds) == 2
    assert again.n_layers == first.n_layers


def test_truncated_weights_are_rebuilt_before_loading(fake_gguf):
    gguf, builds = fake_gguf
    load_model(str(gguf), device="cpu")
    weights = builds[-1] / "model.safetensors"
    replace_file(weights, weights.read_bytes()[:100])
    load_model(str(gguf), device="cpu")
    assert len(builds) == 2


def test_changed_gguf_gets_its_own_cache(fake_gguf):
    gguf, builds = fake_gguf
    load_model(str(gguf), device="cpu")
    gguf.write_bytes(b"GGUF" + bytes(65))
    load_model(str(gguf), device="cpu")
    assert len(builds) == 2 and builds[0] != builds[1]
