"""from_pretrained, offline first, quiet, and its failures turned into one plain line for the user."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from hsviewer.core.errors import HsviewerError
from hsviewer.core.model import streaming
from hsviewer.core.model.memory import DTYPES
from hsviewer.core.model.sources import local_model_folder

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # the bold torch puts in its messages


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """transformers' and huggingface_hub's own log lines, loading reports and progress bars off, then restored.

    Their failures reach the user as one HsviewerError line; hsviewer's own progress is unaffected.
    """
    import logging

    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as tf_logging

    verbosity, bars = tf_logging.get_verbosity(), tf_logging.is_progress_bar_enabled()
    hub_logger = logging.getLogger("huggingface_hub")
    hub_level, hub_bars = hub_logger.level, not hub_utils.are_progress_bars_disabled()
    accelerate_logger = logging.getLogger("accelerate")  # "Some parameters are on the meta device": streaming
    accelerate_level = accelerate_logger.level
    tf_logging.set_verbosity_error()
    tf_logging.disable_progress_bar()
    hub_logger.setLevel(logging.ERROR)
    accelerate_logger.setLevel(logging.ERROR)
    hub_utils.disable_progress_bars()
    try:
        with warnings.catch_warnings():  # torch's own, as a refused pickle's protocol: the error says it all
            warnings.filterwarnings("ignore", category=UserWarning, module="torch")
            yield
    finally:
        tf_logging.set_verbosity(verbosity)
        if bars:
            tf_logging.enable_progress_bar()
        hub_logger.setLevel(hub_level)
        accelerate_logger.setLevel(accelerate_level)
        if hub_bars:
            hub_utils.enable_progress_bars()


@quiet_libraries()
def load_pretrained(
    folder: str, name: str, kwargs: dict[str, Any], dtype: str, device_map: Any, max_memory: dict[Any, int] | None
) -> tuple[Any, Any]:
    """The model (a transformers PreTrainedModel) and its tokenizer; max_memory goes with a device_map."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    trust = bool(kwargs.get("trust_remote_code"))

    config = _call(AutoConfig.from_pretrained, folder, name, **kwargs)
    if getattr(config, "is_encoder_decoder", False):
        raise HsviewerError(f"{name} is an encoder-decoder model; hsviewer needs a decoder-only causal LM.")
    torch_dtype = as_torch_dtype(dtype)
    if device_map == streaming.DISK:  # streamed on the CPU: the skeleton and the files' index, nothing read yet
        local = local_model_folder(folder)
        if local is None:
            raise HsviewerError(f"{name} is not on this machine: streaming reads the model's own files.")
        model = _call(lambda _, **kw: streaming.from_files(local, config, torch_dtype, trust), folder, name)
        return model, _call(AutoTokenizer.from_pretrained, folder, name, **kwargs)
    extra: dict[str, Any] = {"device_map": device_map} if device_map else {}
    if max_memory:
        extra["max_memory"] = max_memory
    model = _call(AutoModelForCausalLM.from_pretrained, folder, name, dtype=torch_dtype, **extra, **kwargs)
    tokenizer = _call(AutoTokenizer.from_pretrained, folder, name, **kwargs)
    return model, tokenizer


def as_torch_dtype(dtype: str) -> torch.dtype:
    """The torch dtype of float32, bfloat16 or float16; auto loads as float32 when no plan chose."""
    if dtype not in DTYPES:
        raise HsviewerError(f"Unknown dtype {dtype!r}: use {', '.join(DTYPES)}.")
    return getattr(torch, "float32" if dtype == "auto" else dtype)


def _call(loader: Callable, folder: str, name: str, **kwargs: Any) -> Any:
    """Run a from_pretrained, offline first, turning its exceptions into one plain message."""
    try:
        return loader(folder, local_files_only=True, **kwargs)
    except HsviewerError:
        raise
    except Exception as local_error:
        if Path(folder).is_dir() or os.environ.get("HF_HUB_OFFLINE") == "1":
            raise HsviewerError(_explain(name, local_error)) from None
    if not _hub_reachable():  # else huggingface_hub retries for half a minute before it gives up
        raise HsviewerError(
            f"{name} is not in the local Hugging Face cache, and huggingface.co cannot be reached from here. "
            "Copy the model folder to this machine and choose it instead."
        )
    try:
        return loader(folder, **kwargs)
    except Exception as e:
        raise HsviewerError(
            f"{name} is not in the local Hugging Face cache and could not be downloaded "
            f"({_explain(name, e)}). Copy the model folder to this machine and choose it instead."
        ) from None


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether a connection to the Hugging Face hub (or the endpoint HF_ENDPOINT names) opens at all."""
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def _explain(name: str, error: Exception) -> str:
    text = ANSI_ESCAPE.sub("", str(error)).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    if "Weights only load failed" in text:  # torch.load's refusal of a pickle with more than tensors in it
        return (
            f"Could not load {name}: its weights file is a pickle (pytorch_model.bin) holding objects other "
            "than tensors, and loading it could run code, so it is refused. Use the model's safetensors weights."
        )
    if "Unrecognized configuration class" in text or "does not recognize this architecture" in text:
        return f"{name} is not a causal language model transformers can load ({_cut(text, 200)})"
    if "ignore_mismatched_sizes" in text:
        return f"Could not load {name}: its weights do not have the sizes its config.json gives"
    if "tokenizer" in text.lower() and ("from one of" in text or "instantiate the backend tokenizer" in text):
        return (
            f"Could not load {name}'s tokenizer: its tokenizer files (tokenizer.json, tokenizer.model "
            "or vocab.json with merges.txt) are missing or unreadable"
        )
    return f"Could not load {name}: {_cut(text, 300)}"


def _cut(text: str, limit: int) -> str:
    """The text, or its first words up to `limit` characters and an ellipsis: never a word cut in two."""
    if len(text) <= limit:
        return text
    return text[: limit + 1].rsplit(" ", 1)[0].rstrip(" ,;:.") + "…"
