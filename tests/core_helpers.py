"""Shared helpers for the core tests: tiny models of each architecture (built once per session by
the `tiny_folder` and `tiny_handle` fixtures), and an independent numpy version of the notebook's
reduction to check the core against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tests.tiny_models import ARCHITECTURES, make_tiny_model

# A different depth per architecture, so nothing can pass by assuming three layers.
LAYERS = {"gpt_neo": 2, "gpt2": 3, "gpt_neox": 4, "llama": 3, "opt": 2, "phi": 3}

# The block list of each architecture, by its known attribute (the core finds it generically).
BLOCK_PATHS = {
    "gpt_neo": "transformer.h",
    "gpt2": "transformer.h",
    "gpt_neox": "gpt_neox.layers",
    "llama": "model.layers",
    "opt": "model.decoder.layers",
    "phi": "model.layers",
}


class TinyModels:
    """Tiny models of each architecture under `root`, each saved and loaded on first use, then kept.

    One instance lives as long as the session fixture that makes it (conftest's `tiny_models`),
    its folder under pytest's tmp_path_factory. Each architecture has its own seed, whatever the order.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._folders: dict[str, Path] = {}
        self._handles: dict[str, object] = {}

    def folder(self, arch: str) -> Path:
        """A saved tiny model of the architecture, LAYERS[arch] blocks deep."""
        if arch not in self._folders:
            seed = ARCHITECTURES.index(arch)
            self._folders[arch] = make_tiny_model(self.root / arch, arch, n_layers=LAYERS[arch], seed=seed)
        return self._folders[arch]

    def handle(self, arch: str):
        """The model loaded through the user's path; tests must not change it."""
        if arch not in self._handles:
            from hsviewer.core import load_model

            handle = load_model(str(self.folder(arch)), device="cpu")
            assert len(handle.tokenizer("the museum of art")["input_ids"]) == 4, "the tiny tokenizer was not kept"
            self._handles[arch] = handle
        return self._handles[arch]


def block_path(model, arch: str):
    obj = model
    for name in BLOCK_PATHS[arch].split("."):
        obj = getattr(obj, name)
    return obj


def smallest_k(s: np.ndarray, threshold: float, tolerance: float = 1e-9) -> int:
    """Smallest k whose cumulative percent of s**2 reaches the threshold (less `tolerance`), by a plain loop."""
    s2 = np.asarray(s, dtype=np.float64) ** 2
    total = s2.sum()
    running = 0.0
    for k, value in enumerate(s2, start=1):
        running += value
        if 100 * running / total >= threshold - tolerance:
            return k
    return len(s2)


def notebook_reconstruction(x: np.ndarray, k: int) -> np.ndarray:
    """The notebook's loopless method: full SVD, a full-size Sigma with k values, U @ S @ Vh."""
    u, s, vh = np.linalg.svd(x)
    big_s = np.zeros_like(x)
    big_s[:k, :k] = np.diag(s[:k])
    return u @ big_s @ vh


def reference_reduce(
    hs: np.ndarray, threshold: float | None = 95.0, components: int | None = None, centering: str = "double"
) -> tuple[np.ndarray, int, float, np.ndarray]:
    """The notebook's reduction in float64 numpy: centre, full SVD, U @ S @ Vh with k values, add the means.

    Returns the reconstruction, k, the percent of variance kept, and the singular values.
    """
    hs = np.asarray(hs, dtype=np.float64)
    if centering == "double":
        offset = hs.mean(axis=0, keepdims=True) + hs.mean(axis=1, keepdims=True) - hs.mean()
    elif centering == "column":
        offset = hs.mean(axis=0, keepdims=True)
    else:
        offset = np.zeros((1, 1))
    centred = hs - offset
    u, s, vh = np.linalg.svd(centred)
    k = components if components is not None else smallest_k(s, threshold)
    big_s = np.zeros_like(centred)
    big_s[:k, :k] = np.diag(s[:k])
    kept = 100 * np.sum(s[:k] ** 2) / np.sum(s**2)
    return u @ big_s @ vh + offset, k, float(kept), s


def margin_ok(s: np.ndarray, threshold: float, margin: float = 1e-3) -> bool:
    """No cumulative percent lies within margin of the threshold, so float32 and float64 agree on k."""
    cum = 100 * np.cumsum(np.asarray(s, dtype=np.float64) ** 2) / np.sum(np.asarray(s, dtype=np.float64) ** 2)
    return bool(np.all(np.abs(cum - threshold) > margin))


def run_with_block_output(handle, ids, layer: int, hidden: np.ndarray) -> tuple[np.ndarray, float]:
    """Logits (T, V) and loss with block `layer`'s output replaced by `hidden` (T, D).

    The notebook's way, by my own hook (not the core's): a full forward with a hook that puts
    `hidden` in as the block's output, whether the block returns a tensor or a tuple.
    """

    def hook(module, args, output):
        new = torch.as_tensor(hidden, dtype=torch.float32)[None]
        return new if isinstance(output, torch.Tensor) else (new, *output[1:])

    hook_handle = handle.blocks[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = handle.model(ids, labels=ids)
    finally:
        hook_handle.remove()
    return out.logits[0].double().numpy(), float(out.loss)


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def kl_by_hand(clean_logits: np.ndarray, logits: np.ndarray) -> float:
    """KL(clean || other) of the next-token distributions, averaged over positions."""
    p = log_softmax(clean_logits)
    q = log_softmax(logits)
    return float(np.mean(np.sum(np.exp(p) * (p - q), axis=-1)))


def cross_entropy_by_hand(logits: np.ndarray, ids: np.ndarray) -> float:
    """The causal LM loss: position t predicts token t+1."""
    lp = log_softmax(logits)[:-1]
    return float(-np.mean(lp[np.arange(len(ids) - 1), ids[1:]]))


__all__ = [
    "BLOCK_PATHS",
    "LAYERS",
    "TinyModels",
    "block_path",
    "cross_entropy_by_hand",
    "kl_by_hand",
    "log_softmax",
    "margin_ok",
    "notebook_reconstruction",
    "reference_reduce",
    "run_with_block_output",
    "smallest_k",
]
