"""A damaged model cache is rebuilt, never loaded half-way; the GGUF reader is replaced by a tiny model.

`fake_gguf` (conftest.py) gives a .gguf path whose 'dequantisation' writes a tiny Llama and counts the builds.
"""

from hsviewer.core import load_model
from tests.support import replace_file


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
