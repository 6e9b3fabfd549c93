"""The streaming GGUF conversion gives what transformers' own GGUF loading gives, tensor for tensor.

Tiny GGUF files of four architectures (tests/gguf_files.py) in F32, F16 and Q8_0, tied and untied;
each converted folder is loaded with from_pretrained and compared with from_pretrained(gguf_file=...).
"""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
import torch

from hsviewer.core.errors import HsviewerError
from hsviewer.core.model import gguf_cache
from tests.gguf_files import write_tiny_gguf

IDS = torch.tensor([[258, 32, 100, 261, 5, 77, 262]])


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HSVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def convert(gguf, dtype="float32", rebuild=False):
    """Drive cached_folder to its end; return the folder and the events."""
    events = []
    steps = gguf_cache.cached_folder(gguf, rebuild=rebuild, dtype=dtype)
    while True:
        try:
            events.append(next(steps))
        except StopIteration as done:
            return done.value, events


def assert_same_as_transformers(folder, gguf, dtype):
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype)
    ours = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype)
    theirs = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch_dtype)
    assert type(ours) is type(theirs)
    assert ours.config.tie_word_embeddings == theirs.config.tie_word_embeddings
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert mine.keys() == reference.keys()
    for name, tensor in reference.items():
        assert mine[name].dtype == tensor.dtype, name
        assert torch.equal(mine[name], tensor), name
    with torch.no_grad():
        torch.testing.assert_close(ours(IDS).logits, theirs(IDS).logits, rtol=0, atol=1e-5)
    return ours


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2", "phi3"])
@pytest.mark.parametrize("kind", ["F32", "F16", "Q8_0"])
def test_converted_weights_equal_transformers_gguf_load(tmp_path, arch, kind):
    gguf = tmp_path / f"{arch}-{kind}.gguf"
    tied = kind != "F16"  # tied embeddings (no output.weight) and an lm_head of its own, both
    write_tiny_gguf(gguf, arch, kind, tied=tied)
    folder, _ = convert(gguf)
    model = assert_same_as_transformers(folder, gguf, "float32")
    assert model.config.tie_word_embeddings == tied
    from safetensors import safe_open

    with safe_open(f"{folder}/model.safetensors", "pt") as f:
        assert ("lm_head.weight" in f.keys()) == (not tied)  # noqa: SIM118 - safe_open is no dict


@pytest.mark.parametrize(("arch", "kind"), [("llama", "Q8_0"), ("gpt2", "F16")])
def test_bfloat16_conversion_equals_transformers_bfloat16_load(tmp_path, arch, kind):
    gguf = tmp_path / f"{arch}.gguf"
    write_tiny_gguf(gguf, arch, kind, tied=False)
    folder, _ = convert(gguf, "bfloat16")
    assert folder.endswith("-bfloat16")
    assert_same_as_transformers(folder, gguf, "bfloat16")
    assert json.loads((gguf_cache.Path(folder) / gguf_cache.MANIFEST).read_text())["dtype"] == "bfloat16"
    float32, _ = convert(gguf)
    assert float32 != folder  # each precision has its own folder


def test_float32_round_trip_gives_back_the_original_model(tmp_path):
    """llama.cpp's q/k permutation (written by the test) is undone: the original weights come back."""
    from transformers import AutoModelForCausalLM

    gguf = tmp_path / "llama.gguf"
    original = write_tiny_gguf(gguf, "llama", "F32", tied=False)
    folder, _ = convert(gguf)
    loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_large_models_are_written_in_shards_with_an_index(tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_cache, "SHARD_BYTES", 40_000)
    gguf = tmp_path / "qwen2.gguf"
    write_tiny_gguf(gguf, "qwen2", "Q8_0", tied=False)
    folder, _ = convert(gguf)
    index = json.loads((gguf_cache.Path(folder) / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    manifest = json.loads((gguf_cache.Path(folder) / gguf_cache.MANIFEST).read_text())
    assert set(shards) <= set(manifest["files"])
    assert_same_as_transformers(folder, gguf, "float32")


def test_progress_names_each_tensor_and_the_time_left(tmp_path):
    gguf = tmp_path / "llama.gguf"
    write_tiny_gguf(gguf, "llama", "Q8_0")
    _, events = convert(gguf)
    first, steps = events[0], events[1:]
    assert first.message == (
        f"Preparing llama.gguf once (converting to float32, about {gguf_cache.estimate_seconds(gguf)} s)"
    )
    n = steps[-1].total
    assert [e.done for e in steps] == list(range(1, n + 1)) and n == 2 * 9 + 2  # 9 tensors a layer
    assert steps[0].message.startswith(f"Converting llama.gguf: tensor 1 of {n}, about ")
    assert steps[-1].message == f"Converting llama.gguf: tensor {n} of {n}, about 0 s left"


def mid_tensor(event) -> bool:
    """An event between two chunks of a tensor: the tensor it names is not done yet."""
    return event.done < int(event.message.split(" tensor ")[1].split(" of ")[0])


def test_a_large_tensor_reports_between_its_chunks_with_the_time_left(tmp_path, monkeypatch):
    gguf = tmp_path / "llama.gguf"
    write_tiny_gguf(gguf, "llama", "Q8_0")
    monkeypatch.setattr(gguf_cache, "DEQUANT_CHUNK", 1)  # one row a chunk: every quantised tensor is "large"
    folder, events = convert(gguf)
    steps = events[1:]
    n = steps[-1].total
    assert [e.done for e in steps if not mid_tensor(e)] == list(range(1, n + 1))  # one event per tensor, as before
    assert sum(mid_tensor(e) for e in steps) > n
    assert all(e.message.endswith(" s left") and e.total == n for e in steps)
    assert [e.done for e in steps] == sorted(e.done for e in steps)
    assert_same_as_transformers(folder, gguf, "float32")


@contextmanager
def tensors_added(monkeypatch):
    """The names of the tensors the conversion writes while the block runs."""
    added: list[str] = []
    add = gguf_cache._Shards.add
    monkeypatch.setattr(
        gguf_cache._Shards, "add", lambda self, name, tensor: added.append(name) or add(self, name, tensor)
    )
    yield added


def test_closing_the_conversion_inside_a_tensor_stops_it_and_leaves_nothing(tmp_path, cache, monkeypatch):
    gguf = tmp_path / "llama.gguf"
    write_tiny_gguf(gguf, "llama", "Q8_0")
    monkeypatch.setattr(gguf_cache, "DEQUANT_CHUNK", 1)
    steps = gguf_cache.cached_folder(gguf)
    next(steps)  # the first message
    event = next(steps)
    while not (mid_tensor(event) and event.done > 0):  # inside a tensor after the first
        event = next(steps)
    assert list((cache / "models").glob(f"{gguf_cache.BUILDING}*"))
    with tensors_added(monkeypatch) as added:
        steps.close()
    assert added == []  # closing converts nothing more: it stops where it is (a clock would be flaky here)
    assert list((cache / "models").iterdir()) == []
    assert not gguf_cache.is_cached(gguf)


def test_the_first_estimate_grows_with_the_file(tmp_path):
    small, large = tmp_path / "small.gguf", tmp_path / "large.gguf"
    small.write_bytes(bytes(1000))
    large.write_bytes(bytes(0))
    with large.open("wb") as f:
        f.truncate(2 * 10**9)  # sparse: 2 GB without the disk
    assert gguf_cache.estimate_seconds(large) > gguf_cache.estimate_seconds(small) + 100


def test_closing_the_conversion_stops_it_and_leaves_nothing(tmp_path, cache, monkeypatch):
    gguf = tmp_path / "phi3.gguf"
    write_tiny_gguf(gguf, "phi3", "F32")
    steps = gguf_cache.cached_folder(gguf)
    next(steps)  # the first message
    next(steps)  # tensor 1
    assert list((cache / "models").glob(f"{gguf_cache.BUILDING}*"))  # half-built, under its temporary name
    with tensors_added(monkeypatch) as added:
        steps.close()
    assert added == []
    assert list((cache / "models").iterdir()) == []
    assert not gguf_cache.is_cached(gguf)


def test_a_truncated_gguf_is_one_clear_error_and_leaves_nothing(tmp_path, cache):
    gguf = tmp_path / "cut.gguf"
    write_tiny_gguf(gguf, "llama", "Q8_0")
    gguf.write_bytes(gguf.read_bytes()[: gguf.stat().st_size - 5000])
    with pytest.raises(HsviewerError) as error:
        convert(gguf)
    assert "cut.gguf" in str(error.value) and "cut short" in str(error.value) and "\n" not in str(error.value)
    assert list((cache / "models").glob("*")) == []


def test_an_unsupported_architecture_is_one_clear_error_and_leaves_nothing(tmp_path, cache):
    import gguf as gguf_lib
    import numpy as np

    path = tmp_path / "mpt.gguf"
    writer = gguf_lib.GGUFWriter(str(path), "mpt")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(HsviewerError) as error:
        convert(path)
    assert "mpt.gguf" in str(error.value) and "not supported" in str(error.value) and "\n" not in str(error.value)
    assert list((cache / "models").iterdir()) == []


def test_an_architecture_the_stream_cannot_take_is_converted_whole(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(gguf_cache, "_WHOLE_PROCESSORS", ("LlamaTensorProcessor",))
    gguf = tmp_path / "llama.gguf"
    write_tiny_gguf(gguf, "llama", "Q8_0")
    folder, events = convert(gguf)
    assert "Converting llama.gguf whole (llama weights are assembled from several GGUF tensors)" in [
        e.message for e in events
    ]
    assert "whole, not tensor by tensor" in caplog.text
    assert_same_as_transformers(folder, gguf, "float32")


def test_cache_list_and_clear(tmp_path):
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    write_tiny_gguf(a, "llama", "Q8_0")
    write_tiny_gguf(b, "gpt2", "F16", seed=1)
    convert(a)
    convert(a, "bfloat16")
    convert(b)
    cached = gguf_cache.list_cached()
    assert [(c.source, c.dtype) for c in cached] == [(str(a), "float32"), (str(a), "bfloat16"), (str(b), "float32")]
    assert all(c.size > 100_000 and c.folder.is_dir() for c in cached)
    assert gguf_cache.clear_cached(cached[0].name) == [cached[0].folder]
    assert not gguf_cache.is_cached(a) and gguf_cache.is_cached(a, "bfloat16")
    with pytest.raises(HsviewerError, match="No converted model named 'nothing'"):
        gguf_cache.clear_cached("nothing")
    assert sorted(gguf_cache.clear_cached()) == sorted([cached[1].folder, cached[2].folder])
    assert gguf_cache.list_cached() == []


@pytest.mark.default_model
def test_default_model_streamed_equals_transformers_whole_load():
    from transformers import AutoModelForCausalLM

    from hsviewer.core.model.default import default_gguf_path

    gguf = default_gguf_path()
    folder, _ = convert(gguf, rebuild=True)
    ours = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).state_dict()
    theirs = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).state_dict()
    assert ours.keys() == theirs.keys()
    for name, tensor in theirs.items():
        torch.testing.assert_close(ours[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_cli_cache_list_and_clear(tmp_path, cache, capsys):
    from hsviewer.cli import main

    gguf = tmp_path / "tiny.gguf"
    write_tiny_gguf(gguf, "qwen2", "Q8_0")
    folder, _ = convert(gguf)
    name = gguf_cache.Path(folder).name
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert f"{name}  float32  " in out and " kB  " in out and str(gguf) in out and folder in out
    assert main(["cache", "clear", "nothing"]) == 2
    assert "No converted model named 'nothing'" in capsys.readouterr().err
    assert main(["cache", "clear", name]) == 0
    assert capsys.readouterr().out == f"Removed 1 converted model from {cache}\n"
    assert main(["cache", "clear"]) == 0
    assert main(["cache", "list"]) == 0
    assert capsys.readouterr().out.endswith(f"No converted models in {cache}\n")
