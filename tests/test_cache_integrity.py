"""Never compute on damaged weights: a converted model's checksums, `cache verify`, NaN and Inf said as such.

A real conversion of a tiny GGUF (tests/gguf_files.py) into a cache of the test's own, then damage
as a disk error or a stray write leaves it: bytes overwritten in place, the size unchanged.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from hsviewer.cli import main
from hsviewer.core.model import gguf_cache
from tests.gguf_files import write_tiny_gguf
from tests.tiny_models import make_tiny_model

TEXT = "The museum opened its doors to a quiet crowd of early visitors."


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(code: int, err: str) -> str:
    """The one 'hsviewer: error:' line of a refusal with exit code 2, with no traceback."""
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert [line for line in lines if line.startswith("hsviewer: error:")] == [lines[-1]], err
    return lines[-1]


@pytest.fixture
def converted(tmp_path, monkeypatch, capsys):
    """A tiny GGUF reduced once through the CLI (so converted into the test's cache): its path,
    the converted weights file and the first run's clean loss."""
    monkeypatch.setenv("HSVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    gguf = tmp_path / "tiny.gguf"
    write_tiny_gguf(gguf, "llama", "F32")
    code, _, err = cli(capsys, *reduce_args(gguf, tmp_path / "first.json"))
    assert code == 0, err
    (folder,) = [c.folder for c in gguf_cache.list_cached()]
    loss = json.loads((tmp_path / "first.json").read_text())["clean_loss"]
    return gguf, folder / "model.safetensors", loss


def reduce_args(model, out) -> list:
    return ["reduce", "--model", model, "--text", TEXT, "--layer", 1, "--device", "cpu", "--out", out]


def overwrite(path, at: int, data: bytes, keep_time: bool = False) -> None:
    """Bytes written over the file in place, as a stray write does; with keep_time its modification time stays."""
    before = path.stat()
    with path.open("r+b") as f:
        f.seek(at)
        f.write(data)
    if keep_time:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size


def finite_garbage(n_bytes: int) -> bytes:
    """Plausible weights that are wrong: float32 100.0 throughout."""
    return np.full(n_bytes // 4, 100.0, np.float32).tobytes()


def test_weights_overwritten_in_the_cache_are_found_and_converted_again(converted, tmp_path, capsys):
    gguf, weights, loss = converted
    size = weights.stat().st_size
    overwrite(weights, size // 3, finite_garbage(min(64 << 10, size // 3)))
    code, _, err = cli(capsys, *reduce_args(gguf, tmp_path / "again.json"))
    assert code == 0, err
    assert "damaged" in err and "model.safetensors" in err and "checksum" in err
    again = json.loads((tmp_path / "again.json").read_text())["clean_loss"]
    assert again == pytest.approx(loss, abs=1e-6)  # computed on the weights converted again, not the damaged ones


def test_an_ordinary_load_does_not_hash_the_weights_again(converted, tmp_path, capsys, monkeypatch):
    gguf, _, _ = converted
    hashed = []
    original = gguf_cache.cache_integrity.sha256_file
    monkeypatch.setattr(gguf_cache.cache_integrity, "sha256_file", lambda p: hashed.append(p.name) or original(p))
    assert cli(capsys, *reduce_args(gguf, tmp_path / "again.json"))[0] == 0
    assert hashed == []


def test_cache_verify_checks_every_file_and_exits_2_on_damage(converted, capsys):
    _, weights, _ = converted
    code, out, err = cli(capsys, "cache", "verify")
    assert code == 0, err
    assert out.strip().endswith("ok") and weights.parent.name in out
    # damage that keeps the size and the modification time: only a full check can see it
    overwrite(weights, weights.stat().st_size // 2, b"\x7f\xc0\x00\x00" * 16, keep_time=True)
    code, out, err = cli(capsys, "cache", "verify")
    assert "damaged" in error_line(code, err)
    assert f"{weights.parent.name}  damaged: model.safetensors does not match" in out


def test_a_cache_entry_without_checksums_is_converted_again(converted, tmp_path, capsys):
    gguf, weights, _ = converted
    manifest = weights.parent / gguf_cache.MANIFEST
    old = json.loads(manifest.read_text())
    del old["sha256"]  # as hsviewer wrote it before checksums were recorded
    manifest.write_text(json.dumps(old))
    code, out, _ = cli(capsys, "cache", "verify")  # not known to be damaged: said, and no failure
    assert code == 0 and f"{weights.parent.name}  unverified: converted before checksums were recorded" in out
    assert cli(capsys, *reduce_args(gguf, tmp_path / "again.json"))[0] == 0
    assert "sha256" in json.loads(manifest.read_text())


@pytest.fixture
def nan_folder(tmp_path):
    """A tiny Llama folder with one NaN in a weight."""
    folder = make_tiny_model(tmp_path / "nan", "llama")
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["model.layers.1.mlp.down_proj.weight"][0, 0] = float("nan")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def test_nan_in_the_weights_is_named_not_called_a_non_causal_model(nan_folder, tmp_path, capsys):
    line = error_line(*cli(capsys, *reduce_args(nan_folder, tmp_path / "r.json"))[::2])
    assert "NaN or Inf" in line and "model.layers.1.mlp.down_proj.weight" in line and "causal" not in line
    assert not (tmp_path / "r.json").exists()


def test_inf_in_the_clean_pass_of_finite_weights_is_said_as_such(tmp_path, capsys):
    folder = make_tiny_model(tmp_path / "gpt2", "gpt2")
    tensors = load_file(str(folder / "model.safetensors"))
    positions = tensors["transformer.wpe.weight"]
    positions[8:] = torch.finfo(torch.float32).max  # finite, but overflows past the fourth token's probe
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    line = error_line(*cli(capsys, *reduce_args(folder, tmp_path / "r.json"))[::2])
    assert "NaN or Inf in the clean pass" in line and "finite weights" in line
    assert not (tmp_path / "r.json").exists()
