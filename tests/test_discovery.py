"""Finding models on disk: fake stores of every kind in a temporary HOME, tiny real GGUF and safetensors files."""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file

from hsviewer.cli import main
from hsviewer.core.errors import HsviewerError
from hsviewer.core.model import default as default_model
from hsviewer.core.model import loading as models_module
from hsviewer.core.model.discovery import gguf_header, remembered
from hsviewer.core.model.discovery import stores as store_dirs
from hsviewer.core.model.discovery.found import KINDS, FoundModel
from hsviewer.core.model.discovery.gguf_header import read_gguf_header
from hsviewer.core.model.discovery.gguf_rows import gguf_file_type
from hsviewer.core.model.discovery.hf_rows import estimate_parameters
from hsviewer.core.model.discovery.ollama import OLLAMA_MODEL_LAYER, resolve_ollama
from hsviewer.core.model.discovery.safetensors_header import safetensors_header
from hsviewer.core.model.discovery.scan import find_models
from hsviewer.core.model.discovery.table import COLUMNS
from hsviewer.core.model.sources import resolve_source

ENV = ("OLLAMA_MODELS", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "LLAMA_CACHE")


def write_gguf(
    path: Path,
    *,
    layers: int = 2,
    hidden: int = 8,
    vocab: int = 16,
    file_type: int = gguf.LlamaFileType.MOSTLY_Q8_0,
    arch: str = "llama",
    general_type: str | None = None,
) -> int:
    """A tiny real GGUF file with a vocabulary and two tensors; returns its parameter count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(layers)
    writer.add_embedding_length(hidden)
    writer.add_file_type(file_type)
    writer.add_vocab_size(vocab)
    writer.add_token_list([f"tok{i}" for i in range(vocab)])
    if general_type:
        writer.add_type(general_type)
    writer.add_tensor("token_embd.weight", np.zeros((vocab, hidden), np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.ones((hidden, hidden), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return vocab * hidden + hidden * hidden


def llama_config(layers: int = 3, hidden: int = 32, vocab: int = 41, **extra) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "vocab_size": vocab,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 2 * hidden,
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        **extra,
    }


def write_hf_folder(folder: Path, config: dict, shapes: dict[str, tuple[int, ...]] | None) -> int:
    """config.json and, when shapes are given, a model.safetensors; returns the weights' element count."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    if shapes is None:
        (folder / "pytorch_model.bin").write_bytes(b"\0" * 64)
        return 0
    save_file({name: np.zeros(shape, np.float32) for name, shape in shapes.items()}, str(folder / "model.safetensors"))
    return sum(int(np.prod(shape)) for shape in shapes.values())


def write_hub_repo(cache: Path, repo: str, files: dict[str, Path], commit: str, main: bool = True, mtime=None):
    """One snapshot of a hub repo as huggingface_hub lays it out: blobs, snapshot symlinks, refs/main."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        blob = root / "blobs" / f"{commit[:8]}-{name}"
        shutil.copyfile(source, blob)
        if mtime is not None:
            os.utime(blob, (mtime, mtime))
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    if main:
        (root / "refs").mkdir(exist_ok=True)
        (root / "refs" / "main").write_text(commit)
    return snapshot


def write_ollama(root: Path, host: str, namespace: str, model: str, tag: str, gguf_file: Path | None) -> None:
    """A manifest naming a model layer; the blob is the GGUF file, or missing when None."""
    digest = "sha256:" + (model + tag).encode().hex().ljust(64, "0")[:64]
    manifest = root / "manifests" / host / namespace / model / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    layers = [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "1" * 64, "size": 10},
        {"mediaType": "application/vnd.ollama.image.model", "digest": digest, "size": 100},
    ]
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": layers}))
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    if gguf_file is not None:
        shutil.copyfile(gguf_file, root / "blobs" / digest.replace(":", "-"))


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty HOME (and XDG folders) with no model-store variables set; the default model is a tiny GGUF."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"), ("XDG_DATA_HOME", ".local/share")):
        monkeypatch.setenv(name, str(home / sub))
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(store_dirs, "OLLAMA_SERVICE_STORE", tmp_path / "no-ollama-service")
    default = tmp_path / "pkg" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    write_gguf(default, layers=30, hidden=576, vocab=64, file_type=gguf.LlamaFileType.MOSTLY_Q4_1)
    monkeypatch.setattr(default_model, "default_gguf_path", lambda: default)
    return home


@pytest.fixture
def stores(home, tmp_path, monkeypatch):
    """One model of every kind, and things that must not be listed; returns what was written."""
    gguf_dir = tmp_path / "gguf"
    out = {}
    # The Hugging Face cache in its default place (~/.cache/huggingface/hub via XDG_CACHE_HOME).
    hub = home / ".cache" / "huggingface" / "hub"
    old, new = tmp_path / "hf-old", tmp_path / "hf-new"
    write_hf_folder(old, llama_config(layers=2), {"w": (2, 2)})
    out["hf_params"] = write_hf_folder(new, llama_config(), {"model.embed_tokens.weight": (41, 32), "norm": (32,)})
    files = {"config.json": new / "config.json", "model.safetensors": new / "model.safetensors"}
    old_files = {"config.json": old / "config.json", "model.safetensors": old / "model.safetensors"}
    write_hub_repo(hub, "org/tiny-llama", old_files, "a" * 40, main=False, mtime=1_000_000)
    out["snapshot"] = write_hub_repo(hub, "org/tiny-llama", files, "b" * 40, mtime=2_000_000)
    bert = tmp_path / "bert"
    write_hf_folder(bert, {"architectures": ["BertModel"], "hidden_size": 8}, {"w": (2,)})
    write_hub_repo(hub, "org/an-encoder", {"config.json": bert / "config.json"}, "c" * 40)
    write_gguf(gguf_dir / "repo.Q8_0.gguf", layers=4, hidden=16)
    write_hub_repo(hub, "org/tiny-GGUF", {"tiny.Q8_0.gguf": gguf_dir / "repo.Q8_0.gguf"}, "d" * 40)
    (hub / "datasets--org--data" / "snapshots" / ("e" * 40)).mkdir(parents=True)
    # Ollama: its store named by OLLAMA_MODELS; a library model, a namespaced one, one from another registry.
    ollama = tmp_path / "ollama-store"
    monkeypatch.setenv("OLLAMA_MODELS", str(ollama))
    out["ollama_params"] = write_gguf(gguf_dir / "ollama.gguf", layers=5, hidden=24, vocab=32)
    write_ollama(ollama, "registry.ollama.ai", "library", "tiny", "latest", gguf_dir / "ollama.gguf")
    write_ollama(ollama, "registry.ollama.ai", "someone", "tiny", "q8", gguf_dir / "ollama.gguf")
    write_ollama(ollama, "hf.co", "org", "tiny-GGUF", "Q8_0", gguf_dir / "ollama.gguf")
    write_ollama(ollama, "registry.ollama.ai", "library", "gone", "7b", None)
    # LM Studio (current and old folders), GPT4All, llama.cpp.
    write_gguf(home / ".lmstudio/models/pub/repo/model-F16.gguf", file_type=gguf.LlamaFileType.MOSTLY_F16)
    write_gguf(home / ".lmstudio/models/pub/repo/mmproj-model-f16.gguf", arch="clip", general_type="mmproj")
    write_gguf(home / ".cache/lm-studio/models/old/repo/old.gguf")
    write_gguf(home / ".local/share/nomic.ai/GPT4All/gpt4all-tiny.gguf", file_type=gguf.LlamaFileType.MOSTLY_Q4_0)
    write_gguf(home / ".cache/llama.cpp/org_repo_tiny-Q4_K_M.gguf", file_type=gguf.LlamaFileType.MOSTLY_Q4_K_M)
    write_gguf(home / ".cache/llama.cpp/embedder.gguf", arch="bert")
    # A folder the user names: an HF folder without safetensors, GGUF files one and two levels down, one too deep.
    added = tmp_path / "my-models"
    write_hf_folder(added / "hf-model", llama_config(tie_word_embeddings=False), None)
    write_gguf(added / "a.gguf")
    write_gguf(added / "x" / "y" / "b.gguf")
    write_gguf(added / "x" / "y" / "z" / "too-deep.gguf")
    out["added"] = added
    return out


def by_name(models: list[FoundModel]) -> dict[str, FoundModel]:
    return {m.name: m for m in models}


def test_gguf_header_reads_what_was_written_as_gguf_reader_does(tmp_path):
    path = tmp_path / "m.gguf"
    params = write_gguf(path, layers=7, hidden=12, vocab=20, file_type=gguf.LlamaFileType.MOSTLY_Q4_K_M)
    header = read_gguf_header(path)
    reader = gguf.GGUFReader(path)
    assert header.metadata["general.architecture"] == "llama"
    assert header.metadata["llama.block_count"] == 7 == reader.get_field("llama.block_count").contents()
    assert header.metadata["llama.embedding_length"] == 12
    assert header.metadata["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q4_K_M
    assert header.metadata["tokenizer.ggml.tokens"] == 20  # an array stands as its length
    assert header.parameters == params == sum(t.n_elements for t in reader.tensors)
    assert header.tensor_count == len(reader.tensors) == 2
    assert set(header.metadata) == set(reader.fields) - {"GGUF.version", "GGUF.tensor_count", "GGUF.kv_count"}
    assert gguf_file_type(header.metadata["general.file_type"]) == "Q4_K_M"


def test_a_header_longer_than_the_first_read_is_read_in_growing_pieces_up_to_a_limit(tmp_path, monkeypatch):
    path = tmp_path / "m.gguf"
    params = write_gguf(path, vocab=500)
    monkeypatch.setattr(gguf_header, "HEADER_START", 64)
    assert read_gguf_header(path).parameters == params
    monkeypatch.setattr(gguf_header, "HEADER_LIMIT", 256)  # a header that never ends within the limit
    with pytest.raises(ValueError, match="not a readable GGUF file"):
        read_gguf_header(path)


@pytest.mark.default_model
def test_gguf_header_of_the_real_default_model_matches_gguf_reader():
    try:
        path = default_model.default_gguf_path()
    except HsviewerError:
        pytest.skip("the default model is not installed")
    header, reader = read_gguf_header(path), gguf.GGUFReader(path)
    assert header.parameters == sum(t.n_elements for t in reader.tensors)
    for key in ("llama.block_count", "llama.embedding_length", "general.file_type", "general.architecture"):
        assert header.metadata[key] == reader.get_field(key).contents()


@pytest.mark.parametrize(
    "data", [b"", b"GGUF", b"not a gguf file at all, just text", b"GGUF\x03\0\0\0" + b"\xff" * 16 + b"\0" * 8]
)
def test_a_damaged_gguf_is_a_row_with_a_problem(home, tmp_path, data):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "bad.gguf").write_bytes(data)
    (bad,) = [m for m in find_models([folder]) if m.kind == "folder"]
    assert bad.name == "bad.gguf" and bad.problem and "\n" not in bad.problem
    assert bad.parameters is None and bad.layers is None


def test_every_source_is_listed_with_its_headers_numbers(stores):
    found = find_models([stores["added"]])
    assert found[0].name == "default" and found[0].source == "default" and found[0].kind == "default"
    assert (found[0].layers, found[0].hidden_size, found[0].quantisation) == (30, 576, "Q4_1")
    assert [m.kind for m in found] == sorted((m.kind for m in found), key=KINDS.index)
    models = by_name(found)
    assert set(models) == {
        "default",
        "org/tiny-llama",
        "org/tiny-GGUF/tiny.Q8_0.gguf",
        "tiny:latest",
        "someone/tiny:q8",
        "hf.co/org/tiny-GGUF:Q8_0",
        "gone:7b",
        "pub/repo/model-F16.gguf",
        "old/repo/old.gguf",
        "gpt4all-tiny.gguf",
        "org_repo_tiny-Q4_K_M.gguf",
        "hf-model",
        "a.gguf",
        "x/y/b.gguf",
    }  # not: the encoder, the dataset, the vision projector, the embedder, the file three levels down

    hf = models["org/tiny-llama"]  # the newest snapshot, which refs/main names: loads by its hub id
    assert hf.kind == "hf-cache" and hf.source == "org/tiny-llama" and hf.path == str(stores["snapshot"])
    assert (hf.architecture, hf.layers, hf.hidden_size, hf.vocab_size) == ("LlamaForCausalLM", 3, 32, 41)
    assert hf.parameters == stores["hf_params"] == 41 * 32 + 32 and not hf.parameters_estimated
    assert hf.quantisation == "bfloat16" and hf.file_bytes == (stores["snapshot"] / "model.safetensors").stat().st_size

    hub_gguf = models["org/tiny-GGUF/tiny.Q8_0.gguf"]
    assert hub_gguf.kind == "hf-cache" and Path(hub_gguf.source).is_file() and hub_gguf.layers == 4

    ollama = models["tiny:latest"]
    assert ollama.kind == "ollama" and ollama.source == "ollama:tiny:latest" and ollama.problem is None
    assert (ollama.architecture, ollama.layers, ollama.hidden_size, ollama.vocab_size) == ("llama", 5, 24, 32)
    assert ollama.parameters == stores["ollama_params"] and ollama.quantisation == "Q8_0"
    assert Path(ollama.path).name.startswith("sha256-") and ollama.file_bytes == Path(ollama.path).stat().st_size
    assert models["someone/tiny:q8"].source == "ollama:someone/tiny:q8"
    assert models["hf.co/org/tiny-GGUF:Q8_0"].source == "ollama:hf.co/org/tiny-GGUF:Q8_0"
    gone = models["gone:7b"]
    assert "missing" in gone.problem and "ollama pull gone:7b" in gone.problem and gone.parameters is None

    assert (
        models["pub/repo/model-F16.gguf"].kind == "lmstudio" and models["pub/repo/model-F16.gguf"].quantisation == "F16"
    )
    assert models["old/repo/old.gguf"].kind == "lmstudio"
    assert models["gpt4all-tiny.gguf"].kind == "gpt4all" and models["gpt4all-tiny.gguf"].quantisation == "Q4_0"
    cpp = models["org_repo_tiny-Q4_K_M.gguf"]
    assert cpp.kind == "llama.cpp" and cpp.quantisation == "Q4_K_M" and Path(cpp.source).is_file()

    folder = models["hf-model"]  # no safetensors: the count is estimated from config.json
    assert folder.kind == "folder" and folder.source == str(stores["added"] / "hf-model")
    assert folder.parameters_estimated and folder.parameters == estimate_parameters(
        llama_config(tie_word_embeddings=False)
    )
    assert models["x/y/b.gguf"].source == str(stores["added"] / "x" / "y" / "b.gguf")
    for m in found:  # a plan where the headers give the sizes: at least the weights in bfloat16
        sized = bool(m.parameters and m.layers and m.hidden_size)
        assert (m.memory_bytes is not None) == sized, m.name
        assert not sized or (m.memory_bytes > 2 * m.parameters and m.memory_dtype in ("float32", "bfloat16"))


def test_estimated_parameters_are_exact_for_a_llama(tiny_model_dir):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    header = safetensors_header(tiny_model_dir / "model.safetensors")
    exact = sum(int(np.prod(t["shape"])) for k, t in header.items() if k != "__metadata__")
    assert estimate_parameters(config) == exact


def test_each_store_honours_its_environment_variable(home, tmp_path, monkeypatch):
    for name, folder in (("HF_HUB_CACHE", "hub"), ("LLAMA_CACHE", "cpp")):
        monkeypatch.setenv(name, str(tmp_path / folder))
    model = tmp_path / "m"
    write_hf_folder(model, llama_config(), {"w": (3, 4)})
    write_hub_repo(
        tmp_path / "hub", "org/elsewhere", {n: model / n for n in ("config.json", "model.safetensors")}, "f" * 40
    )
    write_gguf(tmp_path / "cpp" / "elsewhere.gguf")
    write_gguf(home / ".cache" / "llama.cpp" / "not-here.gguf")
    models = by_name(find_models())
    assert models["org/elsewhere"].parameters == 12 and "elsewhere.gguf" in models and "not-here.gguf" not in models
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    assert "org/elsewhere" not in by_name(find_models())
    (tmp_path / "hf-home").mkdir()
    (tmp_path / "hub").rename(tmp_path / "hf-home" / "hub")  # HF_HOME/hub
    assert "org/elsewhere" in by_name(find_models())


def test_ollama_names_resolve_to_their_blobs(home, tmp_path, monkeypatch):
    store = home / ".ollama" / "models"  # the default store, OLLAMA_MODELS unset
    write_gguf(tmp_path / "m.gguf")
    write_ollama(store, "registry.ollama.ai", "library", "tiny", "latest", tmp_path / "m.gguf")
    write_ollama(store, "registry.ollama.ai", "someone", "tiny", "q8", tmp_path / "m.gguf")
    write_ollama(store, "hf.co", "org", "repo", "Q4_K_M", tmp_path / "m.gguf")
    blob = resolve_ollama("tiny:latest")
    assert blob.parent == store / "blobs" and blob.read_bytes() == (tmp_path / "m.gguf").read_bytes()
    assert resolve_ollama("tiny") == blob == resolve_ollama("ollama:tiny:latest")
    assert resolve_ollama("someone/tiny:q8").is_file() and resolve_ollama("hf.co/org/repo:Q4_K_M").is_file()
    assert resolve_source("ollama:tiny:latest") == ("", "tiny:latest", blob)
    for bad in ("tiny:7b", "nobody/tiny", "../tiny", "a/b/c/d:e", "tiny:"):
        with pytest.raises(HsviewerError) as error:
            resolve_ollama(bad)
        assert "\n" not in str(error.value)


def test_an_ollama_model_whose_blob_is_missing_says_so_in_one_line(home, monkeypatch, caplog):
    store = home / "elsewhere"
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    write_ollama(store, "registry.ollama.ai", "library", "gone", "7b", None)
    with pytest.raises(HsviewerError) as error:
        models_module.load_model("ollama:gone:7b")
    message = str(error.value)
    assert "\n" not in message and "gone:7b" in message and "missing" in message and "ollama pull" in message
    with caplog.at_level(logging.WARNING, logger="hsviewer.core.model.discovery"):
        (row,) = [m for m in find_models() if m.kind == "ollama"]
    assert message == f"Ollama model gone:7b: {row.problem}"  # the listing's note names the model once
    assert not caplog.text  # and the table is where the problem is said, once


def test_models_says_an_ollama_problem_once_naming_the_model_once(home, monkeypatch, capsys):
    store = home / "elsewhere"
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    write_ollama(store, "registry.ollama.ai", "library", "gone", "7b", None)
    assert main(["models"]) == 0
    out, err = capsys.readouterr()
    said = [line for line in (out + err).splitlines() if "missing" in line]
    assert len(said) == 1 and said[0].startswith("note: gone:7b: its weights file") and said[0].count("gone:7b") == 2
    # the second: `ollama pull gone:7b`, what to do


def test_load_model_loads_an_ollama_blob_as_a_gguf_file(home, tmp_path, monkeypatch, tiny_model_dir):
    from hsviewer.core.model import gguf_cache

    write_gguf(tmp_path / "m.gguf")
    write_ollama(home / ".ollama" / "models", "registry.ollama.ai", "library", "tiny", "latest", tmp_path / "m.gguf")
    built = []

    def build(path, folder, key, dtype="float32"):  # the conversion, replaced by a copy of a tiny model
        shutil.copytree(tiny_model_dir, folder)
        gguf_cache.write_manifest(folder, key, path, dtype)
        built.append(path)
        yield from ()  # the real build is a generator of Progress events

    monkeypatch.setattr(gguf_cache, "build", build)
    monkeypatch.setenv("HSVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    handle = models_module.load_model("ollama:tiny:latest", device="cpu")
    assert handle.name == "tiny:latest" and handle.source == "ollama:tiny:latest" and handle.n_layers == 3
    assert built == [resolve_ollama("tiny:latest")]


def test_added_folders_are_remembered_and_forgotten(home, tmp_path, caplog):
    folder = tmp_path / "mine"
    write_gguf(folder / "one.gguf")
    assert "one.gguf" not in by_name(find_models())
    assert remembered.remember_path(folder) == folder.resolve()
    assert remembered.paths_file().is_relative_to(home / ".config")
    remembered.remember_path(folder)  # twice: kept once
    assert remembered.remembered_paths() == [folder.resolve()]
    assert by_name(find_models())["one.gguf"].kind == "folder"
    assert "one.gguf" not in by_name(find_models(remembered=False))
    remembered.forget_path(folder)
    assert remembered.remembered_paths() == [] and "one.gguf" not in by_name(find_models())
    with pytest.raises(HsviewerError, match="not among"):
        remembered.forget_path(folder)
    with pytest.raises(HsviewerError, match="No folder or file"):
        remembered.remember_path(tmp_path / "nothing")
    remembered.paths_file().write_text("{damaged")
    with caplog.at_level(logging.WARNING):
        assert remembered.remembered_paths() == []
    assert "unreadable" in caplog.text
    remembered.remember_path(folder / "one.gguf")  # a single file, after a damaged list
    assert by_name(find_models())["one.gguf"].source == str(folder / "one.gguf")


def test_a_folder_found_twice_is_listed_once(stores, home):
    models = find_models([home / ".lmstudio" / "models"])
    names = [m.name for m in models if m.path.endswith("model-F16.gguf")]
    assert names == ["pub/repo/model-F16.gguf"]  # under LM Studio, the first source that found it


def test_fifty_models_list_from_headers_without_loading_any(home, tmp_path, monkeypatch):
    """The benchmark's shape (50 GGUF files, listed whole); its time is measured by a script, never here."""
    from hsviewer.core.model import gguf_cache

    def no_build(*args):
        raise AssertionError("listing must not build or load a model")

    monkeypatch.setattr(gguf_cache, "build", no_build)
    folder = tmp_path / "fifty"
    for i in range(50):
        write_gguf(folder / f"model-{i:02d}.gguf", layers=i + 1, hidden=8 * (i % 4 + 1))
    found = [m for m in find_models([folder]) if m.kind == "folder"]
    assert len(found) == 50 and all(m.problem is None for m in found)
    assert [m.layers for m in found] == list(range(1, 51))
    assert "torch" not in str([m.to_dict() for m in found])  # plain data, ready for JSON


def test_cli_lists_models_as_a_table_and_as_json(stores, capsys):
    assert main(["models", "--path", str(stores["added"])]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == [c.upper() for c in COLUMNS]
    assert lines[1].split()[:2] == ["default", "default"]
    assert any(line.startswith("tiny:latest ") and "ollama:tiny:latest" in line for line in lines)
    assert "note: gone:7b:" in out
    assert len({line.index("KIND") for line in lines[:1]}) == 1
    assert main(["models", "--json", "--path", str(stores["added"])]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["name"] == "default" and {"x/y/b.gguf", "org/tiny-llama"} <= {m["name"] for m in data}
    assert set(data[0]) == set(FoundModel.__dataclass_fields__)


def test_cli_adds_and_removes_folders(home, tmp_path, capsys):
    write_gguf(tmp_path / "mine" / "one.gguf")
    assert main(["models", "--add", str(tmp_path / "mine"), "--json"]) == 0
    captured = capsys.readouterr()
    assert "Added" in captured.err and "one.gguf" in {m["name"] for m in json.loads(captured.out)}
    assert main(["models", "--remove", str(tmp_path / "mine"), "--json"]) == 0
    assert "one.gguf" not in {m["name"] for m in json.loads(capsys.readouterr().out)}
    assert main(["models", "--path", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err == f"hsviewer: error: No folder or file at {tmp_path / 'nothing'}.\n"
    assert main(["models", "--remove", str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hsviewer: error:") and err.count("\n") == 1


def test_no_stores_at_all_lists_the_default_model_or_why_it_is_missing(home, monkeypatch, capsys):
    assert [m.name for m in find_models()] == ["default"]

    def missing():
        raise HsviewerError("The default model is not installed.")

    monkeypatch.setattr(default_model, "default_gguf_path", missing)
    (row,) = find_models()
    assert row.source == "default" and row.problem == "The default model is not installed."
    assert main(["models"]) == 0 and "note: default: The default model is not installed." in capsys.readouterr().out


# The dialog -------------------------------------------------------------------------------


@pytest.fixture
def scan_worker():
    from hsviewer.gui.worker import Worker

    worker = Worker("test-scan")
    yield worker
    worker.stop()


def test_choose_model_dialog_lists_filters_and_chooses(qtbot, home, stores, scan_worker):
    from PySide6.QtCore import Qt

    from hsviewer.gui.dialogs import ChooseModelDialog
    from hsviewer.gui.job_wiring import connect_job

    remembered.remember_path(stores["added"])
    recent = ["org/tiny-llama", "ollama:tiny:latest", "/typed/by/hand"]
    submitted = []

    def submit(job, handlers):
        submitted.append(job)
        connect_job(job, handlers)
        scan_worker.submit(job)

    dialog = ChooseModelDialog(recent, "default", submit=submit)
    qtbot.addWidget(dialog)
    assert dialog.status.text() == "Scanning…" and [j.name for j in submitted] == ["models", "devices", "plan"]
    assert not any(j.needs_model for j in submitted)  # none waits for the model worker
    qtbot.waitUntil(lambda: "models found" in dialog.status.text(), timeout=60_000)
    rows = [dialog.row_source(r) for r in range(dialog.proxy.rowCount())]
    assert rows[:3] == ["default", "org/tiny-llama", "ollama:tiny:latest"]  # the default, then the recent ones
    assert "/typed/by/hand" in rows and str(stores["added"] / "a.gguf") in rows
    assert len(rows) == len(dialog.models) + 1  # the hand-typed recent source has a row of its own
    assert "models found" in dialog.status.text()

    dialog.filter.setText("LM studio")  # no match: the filter hides every row
    assert dialog.proxy.rowCount() == 0
    dialog.filter.setText("lmstudio")
    assert [dialog.row_source(r) for r in range(dialog.proxy.rowCount())] == [
        str(home / ".cache/lm-studio/models/old/repo/old.gguf"),  # by name within a kind
        str(home / ".lmstudio/models/pub/repo/model-F16.gguf"),
    ]
    dialog.filter.setText("Q4_K_M")
    assert dialog.proxy.rowCount() == 1
    dialog.table.selectRow(0)
    assert dialog.source().endswith("org_repo_tiny-Q4_K_M.gguf")

    dialog.filter.clear()
    layers = dialog.proxy.sourceModel().horizontalHeaderItem(4).text()
    assert layers == "Layers"
    dialog.table.sortByColumn(4, Qt.SortOrder.DescendingOrder)  # by layers, largest first: the default's 30
    assert dialog.row_source(0) == "default"

    with qtbot.waitSignal(dialog.accepted):
        index = dialog.proxy.index(1, 2)
        dialog.table.doubleClicked.emit(index)
    assert dialog.source() == dialog.row_source(1)


def test_choose_model_dialog_without_a_worker_still_takes_typed_text(qtbot, home):
    from hsviewer.gui.dialogs import ChooseModelDialog

    dialog = ChooseModelDialog(["a/b"], "some/model")
    qtbot.addWidget(dialog)
    assert dialog.source() == "some/model" and dialog.status.text() == ""
    assert [dialog.row_source(r) for r in range(dialog.proxy.rowCount())] == ["a/b"]  # before any scan
    dialog.set_models(find_models())
    assert [dialog.row_source(r) for r in range(dialog.proxy.rowCount())] == ["default", "a/b"]


# Hostile and damaged files: one note each, the listing goes on; through --model one line, exit 2 --------


def nested_gguf(path: Path, depth: int) -> None:
    """A GGUF file whose one metadata value is an array of arrays `depth` deep, and one tensor."""
    array = struct.pack("<IQ", 9, 1) * depth + struct.pack("<IQ", 0, 0)
    key = struct.pack("<Q", 1) + b"x" + struct.pack("<I", 9)
    tensor = struct.pack("<Q", 1) + b"w" + struct.pack("<IQIQ", 1, 4, 0, 0)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + key + array + tensor + bytes(64))


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def sparse(path: Path, start: bytes, size: int) -> None:
    """A file of `size` bytes that are zeros after `start`, taking no room on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(start)
        f.truncate(size)


def hostile(kind: str, tmp_path: Path, store: Path) -> tuple[str, str, str]:
    """Write one hostile model; return its name in the listing, its --model source and words its note holds."""

    folder = tmp_path / "added"
    if kind == "nested-gguf":
        folder.mkdir()
        nested_gguf(folder / "nested.gguf", 5000)
        return "nested.gguf", str(folder / "nested.gguf"), "nested over"
    if kind == "truncated-gguf":
        from tests.gguf_files import write_tiny_gguf

        folder.mkdir()
        write_tiny_gguf(folder / "cut.gguf", "llama", "F32")
        data = (folder / "cut.gguf").read_bytes()
        (folder / "cut.gguf").write_bytes(data[: len(data) // 3])
        return "cut.gguf", str(folder / "cut.gguf"), "cut short"
    if kind == "huge-kv-count":  # a sparse 1 GiB file whose header claims 8e7 key-value pairs
        sparse(folder / "claims.gguf", b"GGUF" + struct.pack("<IQQ", 3, 1, 80_000_000), 1 << 30)
        return "claims.gguf", str(folder / "claims.gguf"), "claims 80,000,000 metadata keys"
    if kind == "deep-config":
        write_hf_folder(folder / "deep", llama_config(), {"w": (2, 2)})
        (folder / "deep" / "config.json").write_text(deep_json(100_000))
        return "deep", str(folder / "deep"), "nested too deeply"
    if kind == "shape-1e400":
        write_hf_folder(folder / "huge", llama_config(), None)
        header = b'{"w":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}}'
        (folder / "huge" / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
        return "huge", str(folder / "huge"), "has the shape [inf]"
    write_ollama(store, "registry.ollama.ai", "library", "evil", "latest", None)
    manifest = store / "manifests" / "registry.ollama.ai" / "library" / "evil" / "latest"
    if kind == "deep-manifest":
        manifest.write_text(deep_json(100_000))
        return "evil:latest", "ollama:evil:latest", "nested too deeply"
    if kind == "huge-manifest":
        sparse(manifest, b"", 1 << 30)
        return "evil:latest", "ollama:evil:latest", "too large for an Ollama manifest"
    target = {"passwd": "/etc/passwd", "climb": "../../../../etc/passwd", "absolute-gguf": str(tmp_path / "any.gguf")}
    write_gguf(tmp_path / "any.gguf")
    layers = [{"mediaType": OLLAMA_MODEL_LAYER, "digest": target[kind]}]
    manifest.write_text(json.dumps({"layers": layers}))
    return "evil:latest", "ollama:evil:latest", "not a sha256 digest"


HOSTILE = [
    "nested-gguf",
    "truncated-gguf",
    "huge-kv-count",
    "deep-config",
    "shape-1e400",
    "deep-manifest",
    "huge-manifest",
    "passwd",
    "climb",
    "absolute-gguf",
]


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hostile_model_file_is_one_note_and_the_listing_goes_on(kind, home, tmp_path, monkeypatch, capsys):
    store = tmp_path / "ollama"
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    name, _, words = hostile(kind, tmp_path, store)
    write_gguf(tmp_path / "added" / "good.gguf")
    assert main(["models", "--path", str(tmp_path / "added")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith("default ") and any(
        line.startswith("good.gguf ") for line in out.splitlines()
    )
    (note,) = [line for line in out.splitlines() if line.startswith(f"note: {name}: ")]
    assert words in note


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hostile_model_given_as_model_is_one_line(kind, home, tmp_path, monkeypatch, capsys):
    store = tmp_path / "ollama"
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    monkeypatch.setenv("HSVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    _, source, words = hostile(kind, tmp_path, store)
    args = ["reduce", "--model", source, "--text", "a few words of text", "--layer", "1", "--device", "cpu"]
    code = main([*args, "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert err.count("hsviewer: error:") == 1 and err.strip().splitlines()[-1].startswith("hsviewer: error:")
    if kind not in ("deep-config", "shape-1e400"):  # these two are read, and refused, by transformers itself
        assert words in err
    assert not list((tmp_path / "cache").glob("models/*")) and not (tmp_path / "r.json").exists()


def test_a_claimed_header_is_never_read_past_the_first_piece(home, tmp_path, monkeypatch):
    sparse(tmp_path / "claims.gguf", b"GGUF" + struct.pack("<IQQ", 3, 1, 5_000_000), 64 << 20)
    parsed = []
    original = gguf_header._parse_gguf
    monkeypatch.setattr(gguf_header, "_parse_gguf", lambda data, *a: parsed.append(len(data)) or original(data, *a))
    with pytest.raises(ValueError, match="claims 5,000,000 metadata keys"):
        read_gguf_header(tmp_path / "claims.gguf")
    assert parsed == [gguf_header.HEADER_START]


def test_an_ollama_model_has_the_memory_plan_of_its_gguf_file(home, tmp_path, monkeypatch):
    # Its blob has no .gguf suffix: the plan read it as a model folder and found no size.
    from hsviewer.core.model.load_plan import plan_load
    from hsviewer.core.model.load_spec import LoadSpec

    monkeypatch.setenv("HSVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    store = home / ".ollama" / "models"
    write_gguf(tmp_path / "m.gguf", layers=5, hidden=24, vocab=32)
    write_ollama(store, "registry.ollama.ai", "library", "tiny", "latest", tmp_path / "m.gguf")
    plan = plan_load(LoadSpec(source="ollama:tiny:latest", device="cpu", dtype="float32", memory_budget=8 * 10**9))
    same_file = plan_load(
        LoadSpec(source=str(tmp_path / "m.gguf"), device="cpu", dtype="float32", memory_budget=8 * 10**9)
    )
    assert plan is not None and plan == same_file
    assert plan.weights == 4 * (32 * 24 + 24 * 24) and plan.conversion > 0  # not converted yet
