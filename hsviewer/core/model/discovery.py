"""Find the causal language models already on this machine, offline, from their headers only.

Sources: the default model, the Hugging Face hub cache, Ollama's store, LM Studio's,
GPT4All's and llama.cpp's model folders, and folders the user added (remembered in a
small JSON file in the user config folder). Nothing here loads weights: a GGUF file's
header and tensor table are read from its first bytes, a safetensors file's JSON header
by its length prefix, a Hugging Face folder's config.json as text.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import stat
import struct
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from hsviewer.core.errors import HsviewerError
from hsviewer.core.events import Finished, Progress, run_to_end
from hsviewer.core.model import default as default_model
from hsviewer.core.model.memory import PLAN_TOKENS, ModelFacts, available_bytes, plan_memory

log = logging.getLogger(__name__)

KINDS = ("default", "hf-cache", "ollama", "lmstudio", "gpt4all", "llama.cpp", "folder")
OLLAMA_PREFIX = "ollama:"
OLLAMA_REGISTRY = "registry.ollama.ai"
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
OLLAMA_SERVICE_STORE = Path("/usr/share/ollama/.ollama/models")  # Linux installs run it as the user `ollama`
PATHS_FILE = "model-paths.json"
FOLDER_DEPTH = 2  # an added folder is searched this many levels below itself
WEIGHTS = ("*.safetensors", "*.bin", "*.index.json")
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
NOT_CAUSAL_GGUF = {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "neo-bert", "t5", "t5encoder", "clip"}
NOT_MODEL_GGUF_TYPES = {"adapter", "mmproj", "clip-vision"}
LEARNED_POSITIONS = {"gpt2", "gpt_neo", "opt", "gpt_bigcode", "biogpt", "xglm"}
OLLAMA_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")  # how Ollama names a blob; anything else is refused
# Small JSON files are read whole, but never more than this: a hostile or damaged one must not fill memory.
MANIFEST_LIMIT = 1 << 20  # an Ollama manifest is about 1 kB
CONFIG_LIMIT = 16 << 20  # a config.json is a few kB
INDEX_LIMIT = 64 << 20  # a safetensors index names every tensor: a few MB for the largest models


@dataclass(frozen=True, kw_only=True)
class FoundModel:
    """One model found on disk: what the user calls it, how to load it, and what its headers say."""

    name: str
    source: str  # what load_model accepts: 'default', a path, a hub id, ollama:NAME:TAG
    kind: str  # one of KINDS
    path: str  # the file or folder on disk
    architecture: str | None = None
    parameters: int | None = None
    parameters_estimated: bool = False  # counted from config.json's sizes, not from the weights' headers
    layers: int | None = None
    hidden_size: int | None = None
    vocab_size: int | None = None
    intermediate_size: int | None = None  # the MLP's width
    quantisation: str | None = None  # a GGUF file type (Q4_K_M, F16, ...) or the weights' dtype
    file_bytes: int | None = None
    memory_bytes: int | None = None  # the memory plan's peak at PLAN_TOKENS tokens, in memory_dtype
    memory_dtype: str | None = None  # the precision `auto` would load it in here
    problem: str | None = None  # why it may not load (a missing blob, an unreadable header)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Where each application keeps its models ---------------------------------------------------


def hf_hub_cache() -> Path:
    """The hub cache as huggingface_hub finds it, read from the environment now (its constants are
    fixed at import)."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return _expand(os.environ[name])
    if os.environ.get("HF_HOME"):
        return _expand(os.environ["HF_HOME"]) / "hub"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return _expand(cache) / "huggingface" / "hub"


def ollama_models_dir() -> Path:
    """OLLAMA_MODELS, else ~/.ollama/models (or the Linux service's store when only that exists)."""
    if os.environ.get("OLLAMA_MODELS"):
        return _expand(os.environ["OLLAMA_MODELS"])
    home = Path.home() / ".ollama" / "models"
    return OLLAMA_SERVICE_STORE if not home.exists() and OLLAMA_SERVICE_STORE.is_dir() else home


def lmstudio_dirs() -> list[Path]:
    """LM Studio's model folder, then the one older versions used."""
    return [Path.home() / ".lmstudio" / "models", Path.home() / ".cache" / "lm-studio" / "models"]


def gpt4all_dir() -> Path:
    """~/.local/share/nomic.ai/GPT4All on Linux, ~/Library/Application Support/nomic.ai/GPT4All on macOS."""
    import platformdirs

    return Path(platformdirs.user_data_dir()) / "nomic.ai" / "GPT4All"


def llama_cpp_cache() -> Path:
    """LLAMA_CACHE, else llama.cpp's folder in the user cache (~/.cache/llama.cpp on Linux)."""
    if os.environ.get("LLAMA_CACHE"):
        return _expand(os.environ["LLAMA_CACHE"])
    import platformdirs

    return Path(platformdirs.user_cache_dir()) / "llama.cpp"


def _expand(path: str) -> Path:
    return Path(os.path.expandvars(path)).expanduser()


# The folders the user added ---------------------------------------------------------------


def paths_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("hsviewer", appauthor=False)) / PATHS_FILE


def remembered_paths() -> list[Path]:
    """The folders and files added with `hsviewer models --add` or the app; [] when the file is
    missing or damaged (with a warning)."""
    file = paths_file()
    try:
        data = loads(file.read_text(encoding="utf-8"), file.name)
        paths = data["paths"]
        if not isinstance(paths, list):
            raise TypeError("paths is not a list")
        return [Path(p) for p in paths if isinstance(p, str) and p]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("Ignoring the unreadable list of model folders %s (%s)", file, e)
        return []


def remember_path(path: str | Path) -> Path:
    """Add a folder or a model file to the remembered ones; returns it as stored (absolute)."""
    chosen = Path(path).expanduser().resolve()
    if not chosen.exists():
        raise HsviewerError(f"No folder or file at {path}.")
    paths = remembered_paths()
    if chosen not in paths:
        _write_paths([*paths, chosen])
    return chosen


def forget_path(path: str | Path) -> Path:
    """Remove a folder or file from the remembered ones (given as added, or as it resolves)."""
    paths = remembered_paths()
    given = Path(path).expanduser()
    for candidate in (given, given.resolve()):
        if candidate in paths:
            _write_paths([p for p in paths if p != candidate])
            return candidate
    raise HsviewerError(f"{path} is not among the added model folders ({', '.join(map(str, paths)) or 'none'}).")


def _write_paths(paths: Sequence[Path]) -> None:
    file = paths_file()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(file.name + ".new")
        tmp.write_text(json.dumps({"paths": [str(p) for p in paths]}, indent=2) + "\n", encoding="utf-8")
        tmp.replace(file)
    except OSError as e:
        raise HsviewerError(f"Could not save the list of model folders to {file}: {e.strerror or e}.") from None


def read_json(path: Path, limit: int, what: str) -> Any:
    """A small JSON file of at most `limit` bytes, parsed; ValueError when it is not one.

    A regular file only (a named pipe would block), its size checked before anything is read,
    and nesting too deep for the parser (RecursionError) reported as damage like any other.
    """
    with path.open("rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path.name} is {human_bytes(info.st_size)}, too large for {what}")
        data = f.read(limit + 1)
    return loads(data, path.name)


def loads(data: str | bytes, name: str) -> Any:
    """json.loads, with nesting too deep to parse a ValueError like any other damage."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError(f"{name} is nested too deeply to be read") from None


# Listing ----------------------------------------------------------------------------------


def iter_find_models(
    paths: Iterable[str | Path] = (), *, remembered: bool = True
) -> Generator[Progress | Finished[list[FoundModel]], None, None]:
    """Scan every source, yielding a Progress event before each; ends with Finished(models).

    The default model comes first, then the rest by kind and name. A model found twice
    (an added folder that holds LM Studio's) is listed once, under its first source.
    """
    extra = [Path(p).expanduser() for p in paths]
    if remembered:
        extra += [p for p in remembered_paths() if p not in extra]
    sources: list[tuple[str, Any]] = [
        ("the default model", _default_model),
        ("the Hugging Face cache", lambda: _hf_cache(hf_hub_cache())),
        ("Ollama's models", lambda: _ollama(ollama_models_dir())),
        ("LM Studio's models", lambda: (m for root in lmstudio_dirs() for m in _gguf_tree(root, "lmstudio", 2))),
        ("GPT4All's models", lambda: _gguf_tree(gpt4all_dir(), "gpt4all", 0)),
        ("llama.cpp's cache", lambda: _gguf_tree(llama_cpp_cache(), "llama.cpp", 1)),
        ("the added folders", lambda: (m for root in extra for m in _added(root))),
    ]
    found: list[FoundModel] = []
    seen: set[str] = set()
    for what, scan in sources:
        yield Progress(message=f"Scanning {what}")
        try:
            for model in scan():
                key = model.source if model.kind == "ollama" else _identity(model.path)
                if key not in seen:
                    seen.add(key)
                    found.append(model)
        except OSError as e:  # a folder that cannot be read: the other sources still count
            log.warning("Could not finish scanning %s: %s", what, e)
    found.sort(key=lambda m: (KINDS.index(m.kind), m.name.lower()))
    yield Finished(result=with_memory(found))


def find_models(paths: Iterable[str | Path] = (), *, remembered: bool = True) -> list[FoundModel]:
    """iter_find_models to its end: the models on this machine, the default first."""
    models: list[FoundModel] = run_to_end(iter_find_models(paths, remembered=remembered))
    return models


def _identity(path: str) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return path


def _default_model() -> Iterator[FoundModel]:
    try:
        path = default_model.default_gguf_path()
    except HsviewerError as e:
        yield FoundModel(name="default", source="default", kind="default", path="", problem=str(e))
        return
    model = _gguf_model(path, name="default", source="default", kind="default")
    if model is not None:
        yield model


def _gguf_tree(root: Path, kind: str, depth: int) -> Iterator[FoundModel]:
    """The .gguf files in root and up to `depth` folders below, named by their path under root."""
    for path in _files(root, depth, ".gguf"):
        model = _gguf_model(path, name=path.relative_to(root).as_posix(), source=str(path), kind=kind)
        if model is not None:
            yield model


def _files(root: Path, depth: int, suffix: str) -> Iterator[Path]:
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.suffix.lower() == suffix and entry.is_file():
            yield entry
        elif depth > 0 and entry.is_dir():
            yield from _files(entry, depth - 1, suffix)


def _added(root: Path) -> Iterator[FoundModel]:
    """A folder the user added: Hugging Face model folders and .gguf files up to FOLDER_DEPTH
    below it; or one .gguf file or model folder added by itself."""
    if root.is_file():
        if root.suffix.lower() == ".gguf":
            model = _gguf_model(root, name=root.name, source=str(root), kind="folder")
            if model is not None:
                yield model
        return
    yield from _folder_tree(root, root, FOLDER_DEPTH)


def _folder_tree(root: Path, folder: Path, depth: int) -> Iterator[FoundModel]:
    if _is_hf_folder(folder):
        name = folder.relative_to(root).as_posix() if folder != root else folder.name
        model = _hf_model(folder, name=name, source=str(folder), kind="folder")
        if model is not None:
            yield model
        return
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.suffix.lower() == ".gguf" and entry.is_file():
            model = _gguf_model(entry, name=entry.relative_to(root).as_posix(), source=str(entry), kind="folder")
            if model is not None:
                yield model
        elif depth > 0 and entry.is_dir():
            yield from _folder_tree(root, entry, depth - 1)


def _is_hf_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(True for p in WEIGHTS for _ in folder.glob(p))


# The Hugging Face cache -------------------------------------------------------------------


def _hf_cache(root: Path) -> Iterator[FoundModel]:
    if not root.is_dir():
        return
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir(root)
    except Exception as e:  # CacheNotFound, a file where the folder should be, a permission error
        log.warning("Could not scan the Hugging Face cache %s: %s", root, e)
        return
    for warning in info.warnings:
        log.info("Skipping a damaged Hugging Face cache entry: %s", warning)
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        newest = max(repo.revisions, key=lambda r: r.last_modified)
        folder = Path(newest.snapshot_path)
        # The hub id loads the revision `main` names; any other snapshot loads as a folder.
        source = repo.repo_id if "main" in newest.refs else str(folder)
        if _is_hf_folder(folder):
            model = _hf_model(folder, name=repo.repo_id, source=source, kind="hf-cache")
            if model is not None:
                yield model
        else:  # a repo of GGUF files
            for path in _files(folder, 1, ".gguf"):
                file = path.relative_to(folder).as_posix()
                gguf = _gguf_model(path, name=f"{repo.repo_id}/{file}", source=str(path), kind="hf-cache")
                if gguf is not None:
                    yield gguf


def _hf_model(folder: Path, *, name: str, source: str, kind: str) -> FoundModel | None:
    """A Hugging Face model folder from its config.json and its safetensors headers; None when it
    is not a causal LM."""
    try:
        config = read_json(folder / "config.json", CONFIG_LIMIT, "a config.json")
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        return FoundModel(name=name, source=source, kind=kind, path=str(folder), problem=f"unreadable config.json: {e}")
    architectures = config.get("architectures") or []
    architecture = architectures[0] if architectures and isinstance(architectures[0], str) else None
    if config.get("is_encoder_decoder") or (architecture and not architecture.endswith(CAUSAL_SUFFIXES)):
        log.debug("Skipping %s: %s is not a causal LM", folder, architecture or "an encoder-decoder")
        return None
    text = config.get("text_config")
    if not isinstance(text, dict):
        text = {}
    sizes = {**config, **{k: v for k, v in text.items() if v is not None}}
    files = _weight_files(folder)
    problem = None
    try:
        parameters, dtypes = _safetensors_parameters(files) if files else (None, [])
    except (OSError, ValueError) as e:
        parameters, dtypes, problem = None, [], f"unreadable safetensors header: {e}"
    estimated = parameters is None
    if estimated:
        parameters = estimate_parameters(sizes)
    weights = files or [p for pattern in ("*.bin", "*.pth") for p in folder.glob(pattern)]
    return FoundModel(
        name=name,
        source=source,
        kind=kind,
        path=str(folder),
        architecture=architecture,
        parameters=parameters,
        parameters_estimated=estimated and parameters is not None,
        layers=_int(sizes, "num_hidden_layers", "n_layer", "num_layers"),
        hidden_size=_int(sizes, "hidden_size", "n_embd", "d_model"),
        vocab_size=_int(sizes, "vocab_size"),
        intermediate_size=_int(sizes, "intermediate_size", "n_inner", "ffn_dim"),
        quantisation=_hf_quantisation(config, dtypes),
        file_bytes=sum(_size(p) for p in weights) or None,
        problem=problem,
    )


def _weight_files(folder: Path) -> list[Path]:
    """The safetensors files that make up the model once: the index's shards, or model.safetensors."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = read_json(index, INDEX_LIMIT, "a safetensors index")["weight_map"]
            return [folder / name for name in sorted(set(weight_map.values()))]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    return sorted(p for p in folder.glob("*.safetensors") if not p.name.startswith("consolidated"))


def safetensors_header(path: Path) -> dict[str, Any]:
    """A safetensors file's JSON header: its 8-byte little-endian length, then that many bytes."""
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(f"{path.name} is too short")
        (length,) = struct.unpack("<Q", prefix)
        if length > 100_000_000:
            raise ValueError(f"{path.name} has an implausible header length {length}")
        header = loads(f.read(length), path.name)
    if not isinstance(header, dict):
        raise ValueError(f"{path.name}: the header is not a JSON object")
    return header


def _safetensors_parameters(files: Sequence[Path]) -> tuple[int, list[str]]:
    """The number of weights in the files (the product of each tensor's shape) and their dtypes."""
    total, dtypes = 0, []
    for path in files:
        for key, tensor in safetensors_header(path).items():
            if key == "__metadata__" or not isinstance(tensor, dict):
                continue
            shape = tensor.get("shape", [])
            if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
                raise ValueError(f"{path.name}: tensor {str(key)[:80]!r} has the shape {str(shape)[:80]}")
            total += math.prod(shape)
            dtypes.append(str(tensor.get("dtype", "")))
    return total, dtypes


def estimate_parameters(config: dict[str, Any]) -> int | None:
    """A decoder's weight count from its config's sizes: embeddings, attention, the MLP, the norms.

    Exact for Llama-style models (no biases); near for the others.
    """
    hidden = _int(config, "hidden_size", "n_embd", "d_model")
    layers = _int(config, "num_hidden_layers", "n_layer", "num_layers")
    vocab = _int(config, "vocab_size")
    if not (hidden and layers and vocab):
        return None
    heads = _int(config, "num_attention_heads", "n_head", "num_heads") or 1
    kv_heads = _int(config, "num_key_value_heads") or heads
    head_dim = _int(config, "head_dim") or hidden // heads
    inner = _int(config, "intermediate_size", "n_inner", "ffn_dim") or 4 * hidden
    model_type = str(config.get("model_type", ""))
    act = str(config.get("hidden_act") or config.get("hidden_activation") or "")
    gated = act in ("silu", "swish", "swiglu") or model_type.startswith("gemma")
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    mlp = (3 if gated else 2) * hidden * inner
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings", True) else 2)
    if model_type in LEARNED_POSITIONS:
        embeddings += hidden * (_int(config, "n_positions", "max_position_embeddings") or 0)
    return embeddings + layers * (attention + mlp + 2 * hidden) + hidden


def _hf_quantisation(config: dict[str, Any], dtypes: list[str]) -> str | None:
    quant = config.get("quantization_config")
    if isinstance(quant, dict) and quant.get("quant_method"):
        bits = quant.get("bits") or quant.get("w_bit")
        return f"{quant['quant_method']} {bits}-bit" if bits else str(quant["quant_method"])
    dtype = config.get("torch_dtype") or config.get("dtype")
    if isinstance(dtype, str) and dtype:
        return dtype
    if dtypes:
        return max(set(dtypes), key=dtypes.count)
    return None


def _int(config: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# Ollama -----------------------------------------------------------------------------------


def _ollama(root: Path) -> Iterator[FoundModel]:
    """Every manifest under manifests/HOST/NAMESPACE/MODEL/TAG; a missing blob is a row with a problem."""
    manifests = root / "manifests"
    for manifest in sorted(manifests.glob("*/*/*/*")):
        if manifest.name.startswith(".") or not manifest.is_file():
            continue
        host, namespace, model, tag = manifest.relative_to(manifests).parts
        name = ollama_name(host, namespace, model, tag)
        source = OLLAMA_PREFIX + name
        try:
            blob = _ollama_blob(root, manifest, name)
        except HsviewerError as e:  # the listing's note names the model: the problem need not
            problem = str(e).removeprefix(f"Ollama model {name}: ")
            yield FoundModel(name=name, source=source, kind="ollama", path=str(manifest), problem=problem)
            continue
        found = _gguf_model(blob, name=name, source=source, kind="ollama")
        if found is not None:
            yield found


def ollama_name(host: str, namespace: str, model: str, tag: str) -> str:
    """The name `ollama list` shows: NAME:TAG for the library, NAMESPACE/NAME:TAG, HOST/NAMESPACE/NAME:TAG."""
    if host == OLLAMA_REGISTRY:
        return f"{model}:{tag}" if namespace == "library" else f"{namespace}/{model}:{tag}"
    return f"{host}/{namespace}/{model}:{tag}"


def resolve_ollama(name: str) -> Path:
    """The GGUF blob of an Ollama model, from NAME[:TAG] (or ollama:NAME[:TAG]) through its manifest."""
    name = name.strip().removeprefix(OLLAMA_PREFIX)
    root = ollama_models_dir()
    manifest = root / "manifests" / Path(*_ollama_parts(name))
    if not manifest.is_file():
        raise HsviewerError(f"No Ollama model {name} in {root} (`ollama list` shows the ones there).")
    return _ollama_blob(root, manifest, name)


def _ollama_parts(name: str) -> tuple[str, str, str, str]:
    """NAME[:TAG] as (host, namespace, model, tag), the way Ollama fills in what is left out."""
    path, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "latest")
    parts = path.split("/")
    if len(parts) == 1:
        parts = [OLLAMA_REGISTRY, "library", *parts]
    elif len(parts) == 2:
        parts = [OLLAMA_REGISTRY, *parts]
    if len(parts) != 3 or not tag or any(p in ("", ".", "..") for p in [*parts, tag]):
        raise HsviewerError(f"{name!r} is not an Ollama model name (NAME:TAG, as `ollama list` shows it).")
    host, namespace, model = parts
    return host, namespace, model, tag


def _ollama_blob(root: Path, manifest: Path, name: str) -> Path:
    """The model layer's blob; refused unless the digest is sha256:HEX, a file in the store's blobs folder."""
    try:
        layers = read_json(manifest, MANIFEST_LIMIT, "an Ollama manifest")["layers"]
        digest = next(layer["digest"] for layer in layers if layer.get("mediaType") == OLLAMA_MODEL_LAYER)
    except ValueError as e:
        raise HsviewerError(f"Ollama model {name}: its manifest {manifest} cannot be read ({e}).") from None
    except (OSError, KeyError, TypeError, AttributeError, StopIteration):
        raise HsviewerError(f"Ollama model {name}: its manifest {manifest} names no model file.") from None
    if not isinstance(digest, str) or not OLLAMA_DIGEST.fullmatch(digest):
        raise HsviewerError(
            f"Ollama model {name}: its manifest names the model file {str(digest)[:80]!r}, "
            "not a sha256 digest of a file in the store; refused."
        )
    blobs = root / "blobs"
    blob = blobs / digest.replace(":", "-")
    if blob.is_file() and not blob.resolve().is_relative_to(blobs.resolve()):
        raise HsviewerError(f"Ollama model {name}: its weights file {blob} links outside the store; refused.")
    if not blob.is_file():
        raise HsviewerError(
            f"Ollama model {name}: its weights file {blob.name} is missing from {blob.parent} "
            f"(pull it again with `ollama pull {name}`)."
        )
    return blob


# GGUF -------------------------------------------------------------------------------------


def _gguf_model(path: Path, *, name: str, source: str, kind: str) -> FoundModel | None:
    """A row for a GGUF file from its header; None when the file is not a causal LM (an embedding
    model, a vision projector, a LoRA adapter)."""
    try:
        header = read_gguf_header(path)
    except (OSError, ValueError) as e:
        return FoundModel(
            name=name, source=source, kind=kind, path=str(path), file_bytes=_size(path) or None, problem=str(e)
        )
    meta = header.metadata
    arch = meta.get("general.architecture")
    if arch in NOT_CAUSAL_GGUF or meta.get("general.type") in NOT_MODEL_GGUF_TYPES or not header.tensor_count:
        log.debug("Skipping %s: not a causal LM (%s, %s)", path, arch, meta.get("general.type"))
        return None
    if _int(meta, "split.no"):  # a later part of a split file: its first part stands for it
        return None
    parts = _int(meta, "split.count") or 1
    problem = (
        f"the first of {parts} parts of a split GGUF; hsviewer loads single-file GGUF models"
        if parts > 1
        else header.truncation()
    )
    prefix = f"{arch}." if isinstance(arch, str) else "?."
    vocab = meta.get(prefix + "vocab_size") or meta.get("tokenizer.ggml.tokens")
    return FoundModel(
        name=name,
        source=source,
        kind=kind,
        path=str(path),
        architecture=arch if isinstance(arch, str) else None,
        parameters=header.parameters,
        layers=_int(meta, prefix + "block_count"),
        hidden_size=_int(meta, prefix + "embedding_length"),
        vocab_size=vocab if isinstance(vocab, int) and vocab > 0 else None,
        intermediate_size=_int(meta, prefix + "feed_forward_length"),
        quantisation=gguf_file_type(meta.get("general.file_type")),
        file_bytes=header.file_bytes,
        problem=problem,
    )


def gguf_file_type(value: Any) -> str | None:
    """general.file_type as llama.cpp names it: Q4_K_M, Q8_0, F16, F32, ..."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    from gguf import LlamaFileType

    try:
        return LlamaFileType(value).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return f"file type {value}"


@dataclass(frozen=True, kw_only=True)
class GGUFHeader:
    """A GGUF file's key-value metadata (an array stands as its length) and its tensor table's sums."""

    metadata: dict[str, Any] = field(default_factory=dict)
    tensor_count: int = 0
    parameters: int = 0
    file_bytes: int = 0
    data_bytes: int = 0  # where the tensor table says the last tensor's data ends, from the file's start

    def truncation(self) -> str | None:
        """Why the file cannot hold the tensors its header describes, or None when it can."""
        if self.data_bytes <= self.file_bytes:
            return None
        return (
            f"cut short: its tensors need {human_bytes(self.data_bytes)} but the file has "
            f"{human_bytes(self.file_bytes)} (a download or copy that did not finish?)"
        )


HEADER_START = 4 << 20  # bytes read first: the whole header of a model with a 50k-token vocabulary
HEADER_LIMIT = 64 << 20  # never more: a 262k-token vocabulary with its merges is about 15 MB
# What a model's header holds at most, far above any real one (a few dozen keys, a few thousand tensors,
# a vocabulary of a few hundred thousand tokens, arrays of arrays one level deep): a file claiming more is
# refused at once rather than walked through, so a listing stays well under a second whatever a file claims.
MAX_KEYS = 1 << 16
MAX_TENSORS = 1 << 17
MAX_NESTING = 8
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class _PastEnd(IndexError):
    """The header goes on past the bytes read so far."""


def read_gguf_header(path: str | Path) -> GGUFHeader:
    """The metadata and tensor table of a GGUF file (v2 or v3), read from its first bytes only.

    gguf.GGUFReader reads the same but builds a numpy view for every token of the
    vocabulary: 4.6 s for the default model's header, where this takes about 10 ms.
    Arrays are skipped over and stand as their lengths. The header is read in growing
    pieces, up to HEADER_LIMIT. ValueError when the file is not a readable GGUF file.
    """
    path = Path(path)
    size = path.stat().st_size
    if size < 24:
        raise ValueError(f"{path.name} is not a GGUF file (only {size} bytes).")
    limit = HEADER_START
    with path.open("rb") as f:
        while True:
            f.seek(0)
            with memoryview(f.read(min(limit, size, HEADER_LIMIT))) as data:
                try:
                    return _parse_gguf(data, path.name, size)
                except (struct.error, IndexError, OverflowError):
                    if len(data) < min(size, HEADER_LIMIT):  # the header goes on past what was read
                        limit *= 4
                        continue
                    if len(data) < size:
                        e = IndexError(f"its header does not end within its first {HEADER_LIMIT >> 20} MiB")
                    raise ValueError(f"{path.name} is not a readable GGUF file ({type(e).__name__}: {e}).") from None


def _parse_gguf(data: Any, name: str, size: int) -> GGUFHeader:
    if data[:4] != b"GGUF":
        raise ValueError(f"{name} is not a GGUF file.")
    order = "<"
    (version,) = struct.unpack_from("<I", data, 4)
    if version > 0xFFFF:  # written on a big-endian machine
        order = ">"
        (version,) = struct.unpack_from(">I", data, 4)
    if version < 2:
        raise ValueError(f"{name} is GGUF version {version}; only versions 2 and later are read.")
    u32, u64 = struct.Struct(order + "I").unpack_from, struct.Struct(order + "Q").unpack_from
    tensor_count, kv_count = struct.unpack_from(order + "QQ", data, 8)
    for count, what, most in (
        (kv_count, "metadata keys", min(size // 12, MAX_KEYS)),
        (tensor_count, "tensors", min(size // 24, MAX_TENSORS)),
    ):
        if count > most:
            raise ValueError(f"{name} is not a readable GGUF file (its header claims {count:,} {what}).")
    offset = 24

    def string(at: int) -> tuple[str, int]:
        (n,) = u64(data, at)
        end = at + 8 + n
        if end > len(data):
            raise _PastEnd("a string runs past the end of what was read")
        return bytes(data[at + 8 : end]).decode("utf-8", errors="replace"), end

    def skip(kind: int, at: int, count: int, depth: int = 0) -> int:
        if kind in _SCALARS:
            end = at + count * struct.calcsize(_SCALARS[kind])
        elif kind == _STRING:
            if count * 8 > len(data) - at:  # before walking: each string takes 8 bytes at least
                raise _PastEnd("an array runs past the end of what was read")
            end, view, unpack = at, data, u64  # locals: this loop runs once per token of the vocabulary
            for _ in range(count):
                (n,) = unpack(view, end)
                end += 8 + n
        elif kind == _ARRAY:
            if depth >= MAX_NESTING:
                raise ValueError(f"{name} is not a readable GGUF file (arrays nested over {MAX_NESTING} deep).")
            if count * 12 > len(data) - at:
                raise _PastEnd("an array runs past the end of what was read")
            end = at
            for _ in range(count):
                (inner,) = u32(data, end)
                (n,) = u64(data, end + 4)
                end = skip(inner, end + 12, n, depth + 1)
        else:
            raise IndexError(f"unknown value type {kind}")
        if end > len(data):
            raise _PastEnd("an array runs past the end of what was read")
        return end

    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key, offset = string(offset)
        (kind,) = u32(data, offset)
        offset += 4
        if kind == _STRING:
            metadata[key], offset = string(offset)
        elif kind == _ARRAY:
            (inner,) = u32(data, offset)
            (count,) = u64(data, offset + 4)
            metadata[key] = count
            offset = skip(inner, offset + 12, count)
        elif kind in _SCALARS:
            (metadata[key],) = struct.unpack_from(order + _SCALARS[kind], data, offset)
            offset += struct.calcsize(_SCALARS[kind])
        else:
            raise IndexError(f"unknown value type {kind} for {key}")
    parameters, data_end = 0, 0
    for _ in range(tensor_count):
        _, offset = string(offset)
        (dims,) = u32(data, offset)
        if dims > 8:
            raise IndexError(f"a tensor with {dims} dimensions")
        shape = struct.unpack_from(f"{order}{dims}Q", data, offset + 4)
        kind, start = struct.unpack_from(order + "IQ", data, offset + 4 + 8 * dims)
        offset += 4 + 8 * dims + 4 + 8  # the dimensions, then the type and the data offset
        parameters += math.prod(shape)
        data_end = max(data_end, start + _tensor_bytes(kind, math.prod(shape)))
    alignment = metadata.get("general.alignment", 32)
    alignment = alignment if type(alignment) is int and alignment > 0 else 32
    data_start = -(-offset // alignment) * alignment
    return GGUFHeader(
        metadata=metadata,
        tensor_count=tensor_count,
        parameters=parameters,
        file_bytes=size,
        data_bytes=data_start + data_end if tensor_count else 0,
    )


def _tensor_bytes(kind: int, elements: int) -> int:
    """The bytes a tensor of this ggml type and element count takes (gguf's table of block sizes);
    0 for a type this gguf package does not know, which transformers will name when it loads."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
    except (ValueError, KeyError):
        return 0
    return -(-elements // block) * block_bytes


def check_gguf(path: Path) -> GGUFHeader:
    """The header of a GGUF file about to be converted; HsviewerError when it is unreadable or cut short."""
    try:
        header = read_gguf_header(path)
    except (OSError, ValueError) as e:
        raise HsviewerError(
            str(e) if isinstance(e, ValueError) else f"Could not read {path}: {e.strerror or e}."
        ) from None
    problem = header.truncation()
    if problem:
        raise HsviewerError(f"{path.name} is {problem}.")
    return header


# Text -------------------------------------------------------------------------------------


def human_count(n: int | None, estimated: bool = False) -> str:
    """135.0M, 7.2B; '' for None; '~' before an estimate."""
    if n is None:
        return ""
    for scale, unit in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= scale:
            text = f"{n / scale:.1f}{unit}"
            break
    else:
        text = str(n)
    return ("~" if estimated else "") + text


def human_bytes(n: int | None) -> str:
    """98.4 MB, 4.7 GB (powers of 1000, as Ollama and LM Studio show them); '' for None."""
    if n is None:
        return ""
    for scale, unit in ((10**12, "TB"), (10**9, "GB"), (10**6, "MB"), (10**3, "kB")):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


COLUMNS = ("name", "kind", "architecture", "params", "layers", "hidden", "quant", "size", "memory", "source")


def row_text(model: FoundModel) -> tuple[str, ...]:
    """A model's cells under COLUMNS, as text."""
    return (
        model.name,
        model.kind,
        model.architecture or "",
        human_count(model.parameters, model.parameters_estimated),
        str(model.layers or ""),
        str(model.hidden_size or ""),
        model.quantisation or "",
        human_bytes(model.file_bytes),
        f"{human_bytes(model.memory_bytes)} {model.memory_dtype}" if model.memory_bytes else "",
        model.source,
    )


def format_table(models: Sequence[FoundModel]) -> str:
    """The models as a plain-text table, each column as wide as its widest cell; problems below."""
    if not models:
        return "No models found."
    rows = [tuple(c.upper() for c in COLUMNS), *(row_text(m) for m in models)]
    numeric = {COLUMNS.index(c) for c in ("params", "layers", "hidden", "size", "memory")}
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines += [f"note: {m.name}: {m.problem}" for m in models if m.problem]
    return "\n".join(lines)


def describe(path: str | Path) -> FoundModel | None:
    """What the headers of one model folder or GGUF file say (no weights are read)."""
    path = Path(path)
    if path.suffix.lower() == ".gguf" or path.is_file():  # an Ollama blob is a GGUF file without the suffix
        return _gguf_model(path, name=path.stem, source=str(path), kind="folder")
    return _hf_model(path, name=path.name, source=str(path), kind="folder")


def facts_of(found: FoundModel | None, gguf_to_convert: bool) -> ModelFacts | None:
    """A model's facts from what discovery read in its headers; None when they say too little."""
    if found is None or not (found.parameters and found.layers and found.hidden_size):
        return None
    return ModelFacts(
        parameters=found.parameters,
        n_layers=found.layers,
        hidden_size=found.hidden_size,
        intermediate_size=found.intermediate_size or 4 * found.hidden_size,
        vocab_size=found.vocab_size or 32_000,
        gguf_to_convert=gguf_to_convert,
    )


def with_memory(models: Sequence[FoundModel]) -> list[FoundModel]:
    """The models with what their memory plan needs here (at PLAN_TOKENS tokens, in the precision
    `auto` picks on this machine's CPU memory), where their headers say enough."""
    available = available_bytes("cpu")
    rows = []
    for model in models:
        facts = facts_of(model, gguf_to_convert=False)
        if facts is not None:
            plan = plan_memory(facts, PLAN_TOKENS, available=available)
            model = replace(model, memory_bytes=plan.peak, memory_dtype=plan.dtype)
        rows.append(model)
    return rows
