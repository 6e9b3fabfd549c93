"""Loading models through the user's path: every tiny architecture, and every way a folder can be wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from hsviewer.core import HsviewerError, load_model
from hsviewer.core.model import gguf_cache
from hsviewer.core.model.anatomy import find_blocks
from tests.core_helpers import LAYERS, block_path
from tests.tiny_models import ARCHITECTURES, make_tiny_bert, make_tiny_model, make_tokenizer


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_load_every_architecture(tiny_folder, arch):
    from transformers import AutoModelForCausalLM

    folder = tiny_folder(arch)
    messages = []
    handle = load_model(str(folder), device="cpu", on_event=lambda e: messages.append(getattr(e, "message", "")))
    assert handle.n_layers == LAYERS[arch]
    expected = list(block_path(handle.model, arch))
    assert len(expected) == LAYERS[arch]
    assert all(a is b for a, b in zip(handle.blocks, expected, strict=True))
    assert handle.context_length == 64
    assert handle.name == folder.name
    assert handle.source == str(folder)
    assert handle.device == torch.device("cpu")
    assert not handle.model.training
    assert handle.model.dtype == torch.float32
    assert any("Loaded" in m for m in messages)
    # the weights are the saved ones: same logits as transformers' own loader
    reference = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = torch.tensor([[2, 5, 7, 3, 11, 4]])
    with torch.no_grad():
        torch.testing.assert_close(handle.model(ids).logits, reference(ids).logits)


def test_source_with_whitespace_and_dtype(tiny_model_dir):
    handle = load_model(f"  {tiny_model_dir}  ", device="cpu", dtype="bfloat16")
    assert handle.model.dtype == torch.bfloat16
    assert handle.n_layers == 3


def test_find_blocks_prefers_the_layer_list():
    class Block(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.linear = torch.nn.Linear(width, width)

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.small = torch.nn.ModuleList([Block(2) for _ in range(3)])  # also identical, fewer parameters
            self.mixed = torch.nn.ModuleList([Block(50), torch.nn.ReLU()])  # not identical types
            self.layers = torch.nn.ModuleList([Block(8) for _ in range(3)])

    toy = Toy()
    assert find_blocks(toy) == list(toy.layers)
    assert find_blocks(toy, 3) == list(toy.layers)
    with pytest.raises(HsviewerError, match="decoder blocks"):
        find_blocks(toy, 5)
    with pytest.raises(HsviewerError, match="decoder blocks"):
        find_blocks(torch.nn.Linear(2, 2))


# --- folders that are not usable models ---------------------------------------------------------


@pytest.fixture
def copy_of_tiny(tmp_path, tiny_model_dir):
    folder = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, folder)
    return folder


def test_empty_folder(tmp_path):
    with pytest.raises(HsviewerError, match=r"no config\.json"):
        load_model(str(tmp_path), device="cpu")


def test_folder_without_config(copy_of_tiny):
    (copy_of_tiny / "config.json").unlink()
    with pytest.raises(HsviewerError, match=r"no config\.json"):
        load_model(str(copy_of_tiny), device="cpu")


def test_config_without_weights(copy_of_tiny):
    (copy_of_tiny / "model.safetensors").unlink()
    with pytest.raises(HsviewerError, match="no weights"):
        load_model(str(copy_of_tiny), device="cpu")


@pytest.mark.parametrize("garbage", [b"", b"\x00" * 64, b"not a safetensors file at all" * 10])
def test_corrupt_safetensors(copy_of_tiny, garbage):
    (copy_of_tiny / "model.safetensors").write_bytes(garbage)
    with pytest.raises(HsviewerError, match="copy"):
        load_model(str(copy_of_tiny), device="cpu")


def test_truncated_safetensors(copy_of_tiny):
    path = copy_of_tiny / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(HsviewerError, match="copy"):
        load_model(str(copy_of_tiny), device="cpu")


def test_garbled_config(copy_of_tiny):
    (copy_of_tiny / "config.json").write_text("{ this is not json")
    with pytest.raises(HsviewerError, match="copy"):
        load_model(str(copy_of_tiny), device="cpu")


def test_encoder_only_model(tmp_path):
    folder = make_tiny_bert(tmp_path / "tiny-bert")
    with pytest.raises(HsviewerError, match="not a causal") as info:
        load_model(str(folder), device="cpu")
    assert "tiny-bert" in str(info.value)


def test_encoder_decoder_model(tmp_path):
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = make_tokenizer()
    config = T5Config(
        vocab_size=len(tokenizer), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2
    )
    folder = tmp_path / "tiny-t5"
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with pytest.raises(HsviewerError, match="encoder-decoder"):
        load_model(str(folder), device="cpu")


@pytest.mark.parametrize("source", ["/no/such/model/folder", "./no-such-folder", "~/no-such-hsviewer-model"])
def test_non_existent_path(source):
    with pytest.raises(HsviewerError, match="No model folder"):
        load_model(source, device="cpu")


def test_a_file_is_not_a_model_folder(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(HsviewerError, match="No model folder"):
        load_model(str(path), device="cpu")


@pytest.mark.parametrize("source", ["", "   "])
def test_no_model_given(source):
    with pytest.raises(HsviewerError, match="No model"):
        load_model(source, device="cpu")


def test_hub_id_not_in_cache_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    name = "hsviewer-test-org/no-such-model-xyz"
    with pytest.raises(HsviewerError) as info:
        load_model(name, device="cpu")
    assert name in str(info.value)


def test_missing_gguf_file(tmp_path):
    with pytest.raises(HsviewerError, match="No GGUF file"):
        load_model(str(tmp_path / "absent.gguf"), device="cpu")


def test_garbage_gguf_file_leaves_no_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("HSVIEWER_CACHE_DIR", str(cache))
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"GGUF" + b"\x00\x01" * 100)
    with pytest.raises(HsviewerError, match=r"broken\.gguf"):
        load_model(str(path), device="cpu")
    leftovers = list((cache / "models").iterdir()) if (cache / "models").exists() else []
    assert leftovers == []


def test_unusable_device(tiny_model_dir):
    device = "cuda" if not torch.cuda.is_available() else "no-such-device"
    with pytest.raises(HsviewerError, match=device):
        load_model(str(tiny_model_dir), device=device)
    with pytest.raises(HsviewerError, match="banana"):
        load_model(str(tiny_model_dir), device="banana")


@pytest.mark.parametrize("dtype", ["banana", "Tensor", "int64", "bool"])
def test_unknown_dtype(tiny_model_dir, dtype):
    with pytest.raises(HsviewerError, match=dtype):
        load_model(str(tiny_model_dir), device="cpu", dtype=dtype)


def test_one_layer_decoder_passes_the_causality_check(tmp_path):
    # A positive control for the causality check: the same check passes a real decoder.
    folder = make_tiny_model(tmp_path / "again", "gpt2", n_layers=1)
    assert load_model(str(folder), device="cpu").n_layers == 1


# --- gguf cache manifest ------------------------------------------------------------------------


def _complete_folder(tmp_path):
    folder = tmp_path / "cached"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x" * 100)
    (folder / "config.json").write_text("{}")
    gguf_cache.write_manifest(folder, "abc123", Path("x.gguf"), "float32")
    return folder


def test_is_complete_positive_control(tmp_path):
    assert gguf_cache.is_complete(_complete_folder(tmp_path), "abc123")


def test_is_complete_missing_folder_or_manifest(tmp_path):
    assert not gguf_cache.is_complete(tmp_path / "absent", "abc123")
    folder = _complete_folder(tmp_path)
    (folder / gguf_cache.MANIFEST).unlink()
    assert not gguf_cache.is_complete(folder, "abc123")


def test_is_complete_other_key(tmp_path):
    assert not gguf_cache.is_complete(_complete_folder(tmp_path), "other")


def test_is_complete_wrong_size(tmp_path):
    folder = _complete_folder(tmp_path)
    (folder / "model.safetensors").write_bytes(b"x" * 99)
    assert not gguf_cache.is_complete(folder, "abc123")


def test_is_complete_missing_file(tmp_path):
    folder = _complete_folder(tmp_path)
    (folder / "config.json").unlink()
    assert not gguf_cache.is_complete(folder, "abc123")


@pytest.mark.parametrize(
    "manifest",
    [
        "",
        "{ not json",
        '{"key": "abc123", "files": {"model.safe',  # partial write
        "[1, 2, 3]",
        "null",
        '"abc123"',
        '{"key": "abc123"}',
        '{"files": {"model.safetensors": 100}}',
        '{"key": "abc123", "files": ["model.safetensors"]}',
        '{"key": "abc123", "files": {"model.safetensors": "100"}}',
        '{"key": "abc123", "files": {"model.safetensors": null}}',
    ],
)
def test_is_complete_garbled_manifest(tmp_path, manifest):
    folder = _complete_folder(tmp_path)
    (folder / gguf_cache.MANIFEST).write_text(manifest)
    assert not gguf_cache.is_complete(folder, "abc123")


def test_is_complete_binary_manifest(tmp_path):
    folder = _complete_folder(tmp_path)
    (folder / gguf_cache.MANIFEST).write_bytes(b"\xff\xfe\x00garbage\x80")
    assert not gguf_cache.is_complete(folder, "abc123")


def test_file_key_changes_with_content_and_name(tmp_path):
    a = tmp_path / "a.gguf"
    a.write_bytes(b"1" * 1000)
    key = gguf_cache.file_key(a)
    assert key == gguf_cache.file_key(a)
    a.write_bytes(b"2" * 1000)
    assert gguf_cache.file_key(a) != key
    b = tmp_path / "b.gguf"
    b.write_bytes(b"2" * 1000)
    assert gguf_cache.file_key(b) != gguf_cache.file_key(a)
