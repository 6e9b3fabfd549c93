"""Dequantise a GGUF model once and keep it as safetensors in the user cache.

transformers dequantises GGUF weights on every load (about 20 s for the default model)
and its save_pretrained refuses GGUF-loaded models, so the weights are written with
safetensors directly. The cache folder is keyed by the file's identity and written
under a temporary name, then renamed, so it is whole or absent.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path

import torch

from hsviewer.core.errors import HsviewerError
from hsviewer.core.events import Progress

MANIFEST = "hsviewer-cache.json"
FORMAT = 1
BUILDING = ".building-"  # then "<pid>-<random>": the building process, a unique suffix


def cache_root() -> Path:
    """HSVIEWER_CACHE_DIR, else the platform's user cache directory."""
    if os.environ.get("HSVIEWER_CACHE_DIR"):
        return Path(os.environ["HSVIEWER_CACHE_DIR"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("hsviewer", appauthor=False))


def file_key(path: Path) -> str:
    """Name, size and a hash of the first and last MiB: cheap, and changes with the content."""
    size = path.stat().st_size
    digest = hashlib.sha256(f"{path.name}|{size}|{FORMAT}".encode())
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(size - (1 << 20), 0))
        digest.update(f.read(1 << 20))
    return digest.hexdigest()[:16]


def _folder(gguf: Path) -> tuple[Path, str]:
    """The cache folder of a GGUF file, and the key its manifest must name."""
    key = file_key(gguf)
    return cache_root() / "models" / f"{gguf.stem}-{key}", key


def is_cached(gguf: Path) -> bool:
    """Whether the GGUF file's converted folder is whole in the cache."""
    return is_complete(*_folder(gguf))


def cached_folder(gguf: Path, rebuild: bool = False) -> Generator[Progress, None, str]:
    """A from_pretrained-ready folder for the GGUF file, built if missing, damaged or asked to.

    Yields a Progress event before a build; `yield from` it to get the folder.
    """
    folder, key = _folder(gguf)
    remove_abandoned_builds(folder.parent)
    if rebuild or not is_complete(folder, key):
        yield Progress(message=f"Preparing {gguf.name} once (dequantising, about 20-40 s)")
        shutil.rmtree(folder, ignore_errors=True)
        build(gguf, folder, key)
    return str(folder)


def is_complete(folder: Path, key: str) -> bool:
    """The manifest names the key and every file with its size."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        return manifest["key"] == key and all(
            (folder / name).stat().st_size == size for name, size in manifest["files"].items()
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def remove_abandoned_builds(models: Path) -> None:
    """Delete the half-built folders of processes that ended mid-build (killed, or the app
    closed during dequantisation): each is hundreds of MB that nothing else would remove."""
    import psutil

    for tmp in models.glob(f"{BUILDING}*"):
        pid = tmp.name[len(BUILDING) :].split("-")[0]
        if not pid.isdigit() or not psutil.pid_exists(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def build(gguf: Path, folder: Path, key: str) -> None:
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{BUILDING}{os.getpid()}-", dir=folder.parent))
    try:
        try:
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except Exception as e:
            raise HsviewerError(f"Could not read {gguf.name} as a GGUF model: {str(e)[:300]}") from None
        config = copy.deepcopy(model.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"))
        files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps({"key": key, "source": str(gguf), "files": files}))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
