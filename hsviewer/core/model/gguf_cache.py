"""Dequantise a GGUF model once and keep it as safetensors in the user cache.

transformers dequantises GGUF weights on every load (about 20 s for the default model)
and its save_pretrained refuses GGUF-loaded models, so the weights are written with
safetensors directly. The conversion streams: one tensor at a time is read, dequantised
with the gguf package, renamed and un-permuted by transformers' own GGUF tensor
processors, cast to the chosen precision and appended to a shard of at most
SHARD_BYTES, so its peak memory is about a shard and a tensor, not the whole model
several times over. The cache folder is keyed by the file's identity and the precision,
and written under a temporary name, then renamed, so it is whole or absent. Its manifest
records every file's size and SHA-256 (cache_integrity), checked again whenever a file's
size or time has changed, so a damaged folder is converted again, never computed on.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hsviewer.core.errors import HsviewerError
from hsviewer.core.events import Progress
from hsviewer.core.model import cache_integrity
from hsviewer.core.model.discovery.gguf_header import check_gguf
from hsviewer.core.model.memory import CONVERSION_SHARD_BYTES

MANIFEST = "hsviewer-cache.json"
FORMAT = 1
BUILDING = ".building-"  # then "<pid>-<random>": the building process, a unique suffix
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
NO_CHECKSUMS = "converted before checksums were recorded: converted again at its next load"
SHARD_BYTES = CONVERSION_SHARD_BYTES  # a shard is written once it would grow past this (the plan counts it)
DEQUANT_CHUNK = 1 << 24  # values dequantised at once (64 MB of float32): bounds gguf's temporaries
# The first estimate: a fixed start (reading the header, the tokenizer) and seconds per byte of
# GGUF file, from the default model (98 MB of Q4_1: 17-18 s on 2 cores); later ones come from the pace.
START_SECONDS = 10.0
SECONDS_PER_BYTE = 8e-8
# Processors that assemble one weight from several GGUF tensors (mixture-of-experts): the
# streaming path writes each tensor on its own, so these are converted whole.
_WHOLE_PROCESSORS = ("Qwen2MoeTensorProcessor", "GptOssTensorProcessor", "MiniMaxM2TensorProcessor")

log = logging.getLogger(__name__)


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


def _folder(gguf: Path, dtype: str = "float32") -> tuple[Path, str]:
    """The cache folder of a GGUF file in a precision, and the key its manifest must name."""
    key = file_key(gguf)
    suffix = "" if dtype == "float32" else f"-{dtype}"  # float32 keeps the name it always had
    return cache_root() / "models" / f"{gguf.stem}-{key}{suffix}", key


def _check_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise HsviewerError(f"A converted GGUF model is float32 or bfloat16; got {dtype!r}.")
    return DTYPES[dtype]


def is_cached(gguf: Path, dtype: str = "float32") -> bool:
    """Whether the GGUF file's converted folder is whole in the cache."""
    return is_complete(*_folder(gguf, dtype))


def estimate_seconds(gguf: Path) -> int:
    """A first guess at the conversion's length, from the file's size."""
    return round(START_SECONDS + gguf.stat().st_size * SECONDS_PER_BYTE)


def cached_folder(gguf: Path, rebuild: bool = False, dtype: str = "float32") -> Generator[Progress, None, str]:
    """A from_pretrained-ready folder for the GGUF file, built if missing, damaged or asked to.

    Yields Progress events during a build (closing the generator between them cancels it
    and removes what was written); `yield from` it to get the folder. dtype: the precision
    the weights are written in, float32 or bfloat16.
    """
    _check_dtype(dtype)
    folder, key = _folder(gguf, dtype)
    remove_abandoned_builds(folder.parent)
    damage = None if rebuild or not is_complete(folder, key) else verify_folder(folder)
    if damage:
        log.warning("The converted %s in %s is damaged: %s", gguf.name, folder, damage)
        yield Progress(message=f"The converted {gguf.name} in the cache is damaged ({damage}): converting it again")
    if rebuild or damage or not is_complete(folder, key):
        yield Progress(message=f"Preparing {gguf.name} once (converting to {dtype}, about {estimate_seconds(gguf)} s)")
        shutil.rmtree(folder, ignore_errors=True)
        yield from build(gguf, folder, key, dtype)
        _return_freed_memory()
    return str(folder)


def _return_freed_memory() -> None:
    """Give the heap glibc kept after a conversion back to the system before the model loads:
    measured on a 1.1B bfloat16 conversion, the process held 1.35 GB it no longer used, 0.44 GB after."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim this way
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def is_complete(folder: Path, key: str) -> bool:
    """The manifest names the key and every file with its size and checksum (a folder converted
    before checksums were recorded is converted again once), and the sizes are those on disk."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files, sums = manifest["files"], manifest["sha256"]
        return (
            manifest["key"] == key
            and set(files) == set(sums)
            and all((folder / name).stat().st_size == size for name, size in files.items())
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return False


def verify_folder(folder: Path, everything: bool = False) -> str | None:
    """What is damaged in a whole cache folder, in words (NO_CHECKSUMS for one converted before they
    were recorded), or None: the files changed since last verified are hashed again against the
    manifest (or all of them, with `everything`)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        recorded = manifest["sha256"]
        if not isinstance(recorded, dict) or not recorded:
            raise TypeError("no checksums")
    except OSError as e:
        return f"its manifest {MANIFEST} cannot be read ({e.strerror or e})"
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return NO_CHECKSUMS
    return cache_integrity.verify(folder, {str(k): str(v) for k, v in recorded.items()}, everything)


def write_manifest(folder: Path, key: str, source: Path, dtype: str) -> None:
    """The manifest of a converted folder: the key, the source, and each file's size and SHA-256."""
    names = sorted(
        p.name for p in folder.iterdir() if p.is_file() and p.name not in (MANIFEST, cache_integrity.VERIFIED)
    )
    files = {name: (folder / name).stat().st_size for name in names}
    sums = cache_integrity.checksums(folder, names)
    manifest = {"key": key, "source": str(source), "dtype": dtype, "files": files, "sha256": sums}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    cache_integrity.remember_verified(folder, names)


def remove_abandoned_builds(models: Path) -> None:
    """Delete the half-built folders of processes that ended mid-build (killed, or the app
    closed during dequantisation): each is hundreds of MB that nothing else would remove."""
    import psutil

    for tmp in models.glob(f"{BUILDING}*"):
        pid = tmp.name[len(BUILDING) :].split("-")[0]
        if not pid.isdigit() or not psutil.pid_exists(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def build(gguf: Path, folder: Path, key: str, dtype: str = "float32") -> Generator[Progress, None, None]:
    """Convert the GGUF file into `folder`, streaming when the architecture allows, else whole.

    Written in a temporary folder renamed at the end: an error, or closing the generator
    between its events, leaves nothing behind.
    """
    torch_dtype = _check_dtype(dtype)
    check_gguf(gguf)  # cut short or unreadable: said plainly before transformers' own reader fails on it
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{BUILDING}{os.getpid()}-", dir=folder.parent))
    try:
        plan = _read(gguf)
        if isinstance(plan, str):
            log.warning("Converting %s whole, not tensor by tensor: %s", gguf.name, plan)
            yield Progress(message=f"Converting {gguf.name} whole ({plan})")
            _build_whole(gguf, tmp, torch_dtype)
        else:
            yield from _stream(gguf, plan, tmp, torch_dtype)
        write_manifest(tmp, key, gguf, dtype)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class _Plan:
    """What the streaming conversion needs, read from the file's header without its weights."""

    header: Any  # transformers' GgufHeader: the tensor table
    config: Any  # the transformers config
    tokenizer: Any
    processor: Any  # transformers' TensorProcessor for the architecture
    names: dict[str, str]  # GGUF tensor name -> transformers parameter name


def _read(gguf: Path) -> _Plan | str:
    """The streaming plan, or why this file is converted whole. Unreadable files raise HsviewerError."""
    try:  # transformers' own tensor-table reader (5.x): fast, and reads no metadata it does not need
        from transformers.integrations.gguf import GGUF_ARCHS, GgufHeader
    except ImportError:
        return "this transformers has no GGUF tensor-table reader"
    try:
        header = GgufHeader.from_file(str(gguf))
    except Exception as e:  # transformers' whole load reports it, or reads what this reader cannot
        return f"its tensor table did not read ({str(e)[:200]})"
    if header.architecture in GGUF_ARCHS:
        return f"transformers converts {header.architecture} through its own weight converters"
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.modeling_gguf_pytorch_utils import (
            TENSOR_PROCESSORS,
            TensorProcessor,
            get_gguf_hf_weights_map,
            load_gguf_checkpoint,
        )
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        processor_class = TENSOR_PROCESSORS.get(header.architecture, TensorProcessor)
        if processor_class.__name__ in _WHOLE_PROCESSORS:
            return f"{header.architecture} weights are assembled from several GGUF tensors"
        # The config as AutoConfig.from_pretrained(..., gguf_file=...) makes it, without reading the file again.
        parsed = load_gguf_checkpoint(str(gguf), return_tensors=False)["config"]
        config = CONFIG_MAPPING[parsed["model_type"]].from_dict(copy.deepcopy(parsed))
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        with torch.device("meta"):  # only its parameter names: no memory
            model = AutoModelForCausalLM.from_config(config)
        processor = processor_class(config=parsed)
        names = get_gguf_hf_weights_map(model, processor)
    except Exception as e:
        raise HsviewerError(f"Could not read {gguf.name} as a GGUF model: {str(e)[:300]}") from None
    return _Plan(header=header, config=config, tokenizer=tokenizer, processor=processor, names=names)


def _stream(gguf: Path, plan: _Plan, tmp: Path, dtype: torch.dtype) -> Generator[Progress, None, None]:
    """Each tensor in turn: read, dequantise, process and name as transformers does, cast, shard."""
    config = copy.deepcopy(plan.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = dtype
    config.save_pretrained(tmp)
    plan.tokenizer.save_pretrained(tmp)
    shards = _Shards(tmp)
    tensors = plan.header.tensors
    total_bytes = sum(t.nbytes for t in tensors) or 1
    done_bytes = 0
    start = time.monotonic()

    def step(i: int, done: float, tensors_done: int) -> Progress:
        """Progress at `done` bytes converted, the time left extrapolated from the time so far."""
        left = (time.monotonic() - start) * (total_bytes - done) / max(done, 1)
        message = f"Converting {gguf.name}: tensor {i} of {len(tensors)}, about {round(left)} s left"
        return Progress(message=message, done=tensors_done, total=len(tensors))

    with gguf.open("rb") as f:
        for i, tensor in enumerate(tensors, 1):
            try:
                # within a large tensor, an event per dequantised chunk: closing stops it there
                def within(share: float, i: int = i, size: int = tensor.nbytes, before: int = done_bytes) -> Progress:
                    return step(i, before + share * size, i - 1)

                for name, weights in (yield from _convert(f, tensor, plan, within)):
                    shards.add(name, weights.to(dtype))
            except HsviewerError:
                raise
            except Exception as e:
                raise HsviewerError(f"Could not convert {gguf.name} ({tensor.name}): {str(e)[:300]}") from None
            done_bytes += tensor.nbytes
            yield step(i, done_bytes, i)
    shards.finish()


def _convert(
    f: Any, tensor: Any, plan: _Plan, within: Callable[[float], Progress]
) -> Generator[Progress, None, list[tuple[str, torch.Tensor]]]:
    """The transformers parameters one GGUF tensor becomes (none for a tensor transformers ignores),
    with an event between the chunks it dequantises (_dequantize)."""
    import numpy as np

    weights = yield from _dequantize(f, tensor, plan.header.data_start, within)
    deposited: dict[str, dict[str, torch.Tensor]] = {"tensors": {}}  # where a processor puts what it names itself
    result = plan.processor.process(
        weights=weights, name=tensor.name, tensor_key_mapping=plan.names, parsed_parameters=deposited
    )
    out = list(deposited["tensors"].items())
    if result.name is not None and result.name in plan.names:
        out.append((plan.names[result.name], torch.from_numpy(np.copy(result.weights))))
    return out


def _dequantize(
    f: Any, tensor: Any, data_start: int, within: Callable[[float], Progress]
) -> Generator[Progress, None, Any]:
    """One tensor's values as float32 numpy (the gguf package's dequantisation, as transformers uses),
    read from the file rather than a memory map, and a chunk of rows at a time, with the event
    within(share done) after each chunk but the last."""
    import gguf as gguf_lib
    import numpy as np

    f.seek(data_start + tensor.offset)
    raw = np.fromfile(f, dtype=np.uint8, count=tensor.nbytes)
    if raw.size != tensor.nbytes:
        raise HsviewerError(f"{tensor.name} is cut short: the GGUF file is truncated.")
    qtype = gguf_lib.GGMLQuantizationType(tensor.ggml_type)
    if qtype == gguf_lib.GGMLQuantizationType.F32:
        return raw.view(np.float32).reshape(tensor.shape)
    if qtype == gguf_lib.GGMLQuantizationType.F16:
        return gguf_lib.dequantize(raw.view(np.float16).reshape(tensor.shape), qtype)
    rows = raw.reshape(-1, raw.size // max(1, int(np.prod(tensor.shape[:-1]))))  # one row of blocks each
    step = max(1, DEQUANT_CHUNK // tensor.shape[-1])
    out = np.empty((rows.shape[0], tensor.shape[-1]), dtype=np.float32)
    for row in range(0, rows.shape[0], step):
        out[row : row + step] = gguf_lib.dequantize(rows[row : row + step], qtype)
        if row + step < rows.shape[0]:
            yield within((row + step) / rows.shape[0])
    return out.reshape(tensor.shape)


class _Shards:
    """Tensors gathered into safetensors shards of at most SHARD_BYTES, indexed as transformers does."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pending: dict[str, torch.Tensor] = {}
        self.pending_bytes = 0
        self.files: list[tuple[Path, list[str]]] = []
        self.total = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        if self.pending and self.pending_bytes + size > SHARD_BYTES:
            self.flush()
        self.pending[name] = tensor.contiguous()
        self.pending_bytes += size
        self.total += size

    def flush(self) -> None:
        from safetensors.torch import save_file

        path = self.folder / f"shard-{len(self.files)}.tmp"
        save_file(self.pending, str(path), metadata={"format": "pt"})
        self.files.append((path, list(self.pending)))
        self.pending, self.pending_bytes = {}, 0

    def finish(self) -> None:
        if self.pending or not self.files:
            self.flush()
        if len(self.files) == 1:
            self.files[0][0].rename(self.folder / "model.safetensors")
            return
        weight_map = {}
        for n, (path, names) in enumerate(self.files, 1):
            name = f"model-{n:05d}-of-{len(self.files):05d}.safetensors"
            path.rename(self.folder / name)
            weight_map.update(dict.fromkeys(names, name))
        index = {"metadata": {"total_size": self.total}, "weight_map": weight_map}
        (self.folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def _build_whole(gguf: Path, tmp: Path, dtype: torch.dtype) -> None:
    """transformers' own whole-model load, then saved: every tensor dequantised at once (7-8 bytes per parameter)."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except Exception as e:
        raise HsviewerError(f"Could not read {gguf.name} as a GGUF model: {str(e)[:300]}") from None
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    save_model(model, str(tmp / "model.safetensors"))


@dataclass(frozen=True)
class CachedModel:
    """A converted GGUF model in the cache."""

    name: str  # the cache folder's name, which `clear_cached` takes
    source: str  # the GGUF file it was converted from
    dtype: str
    size: int  # bytes on disk
    folder: Path


def list_cached() -> list[CachedModel]:
    """The converted models in the cache, whole ones only, by name."""
    found = []
    models = cache_root() / "models"
    for folder in sorted(models.iterdir()) if models.is_dir() else []:
        if folder.name.startswith(BUILDING) or not folder.is_dir():
            continue
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            source, dtype = str(manifest.get("source", "?")), str(manifest.get("dtype", "float32"))
        except (OSError, ValueError, AttributeError):
            source, dtype = "?", "?"  # damaged: listed so that it can be cleared
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        found.append(CachedModel(name=folder.name, source=source, dtype=dtype, size=size, folder=folder))
    return found


def verify_cached() -> list[tuple[CachedModel, str | None]]:
    """Every converted model with what is damaged in it (every file hashed against its manifest), or None."""
    return [(c, verify_folder(c.folder, everything=True)) for c in list_cached()]


def clear_cached(name: str | None = None) -> list[Path]:
    """Delete every converted model, or the one of this name; return the folders deleted."""
    cached = list_cached()
    if name is not None:
        cached = [c for c in cached if c.name == name]
        if not cached:
            raise HsviewerError(f"No converted model named {name!r} in the cache (hsviewer cache list shows them).")
    for c in cached:
        try:
            shutil.rmtree(c.folder)
        except OSError as e:  # on Windows, a file the loaded model still maps
            raise HsviewerError(f"Could not delete {c.folder}: {e.strerror or e}") from None
    return [c.folder for c in cached]
