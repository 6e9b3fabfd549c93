"""Where each application keeps its models, read from the environment at each call."""

from __future__ import annotations

import os
from pathlib import Path

OLLAMA_SERVICE_STORE = Path("/usr/share/ollama/.ollama/models")  # Linux installs run it as the user `ollama`


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
