"""Ollama's store: manifests/HOST/NAMESPACE/MODEL/TAG name a GGUF blob in blobs/ by its sha256 digest."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from hsviewer.core.errors import HsviewerError
from hsviewer.core.model.discovery.files import read_json
from hsviewer.core.model.discovery.found import FoundModel
from hsviewer.core.model.discovery.gguf_rows import gguf_model
from hsviewer.core.model.discovery.stores import ollama_models_dir

OLLAMA_PREFIX = "ollama:"
OLLAMA_REGISTRY = "registry.ollama.ai"
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
OLLAMA_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")  # how Ollama names a blob; anything else is refused
MANIFEST_LIMIT = 1 << 20  # an Ollama manifest is about 1 kB: read whole, but never more than this


def ollama_models(root: Path) -> Iterator[FoundModel]:
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
        found = gguf_model(blob, name=name, source=source, kind="ollama")
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
