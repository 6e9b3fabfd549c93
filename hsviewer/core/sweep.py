"""Part 4 of the notebook: reduce each block in turn and measure what changes downstream.

method="prefix" (default) reuses the clean run's block outputs up to the reduced block
and computes only the blocks after it; method="hooks" is the notebook's full forward
pass per layer with a hook, kept as the reference the fast path is tested against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hsviewer.core.batched import batched_tails
from hsviewer.core.blocks import block_hidden
from hsviewer.core.errors import HsviewerError
from hsviewer.core.hooks import capture_outputs, reduce_at, replay_prefix
from hsviewer.core.reduction import Decomposition, Reduction, decompose, reduce_matrix
from hsviewer.core.runs import LogitMetrics, Reference, Run, forward, logits_of, row
from hsviewer.core.text import Tokens, tokenize

METHODS = ("prefix", "hooks")
CONTROLS = ("exclude_first", "random", "shuffled")


@dataclass
class LayerResult:
    layer: int
    components: int
    variance_kept: float
    hidden_diff_norm: float
    logit_diff_norm: float
    loss: float
    kl_divergence: float
    token_diff_norms: list[float]
    grid_components: list[int] = field(default_factory=list)  # one per grid setting
    grid_loss: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "components": self.components,
            "variance_kept": self.variance_kept,
            "hidden_diff_norm": self.hidden_diff_norm,
            "logit_diff_norm": self.logit_diff_norm,
            "loss": self.loss,
            "kl_divergence": self.kl_divergence,
            "token_diff_norms": self.token_diff_norms,
        }


@dataclass
class SweepResult:
    model: str
    tokens: list[str]
    n_layers: int
    reduction: Reduction
    clean_loss: float
    layers: list[LayerResult] = field(default_factory=list)
    grid: list[Reduction] = field(default_factory=list)
    controls: dict[str, SweepResult] = field(default_factory=dict)
    method: str = "prefix"
    warnings: list[str] = field(default_factory=list)
    cancelled: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {
            "model": self.model,
            "tokens": self.tokens,
            "n_layers": self.n_layers,
            "threshold": self.reduction.threshold,
            "fixed_components": self.reduction.components,
            "centering": self.reduction.centering,
            "clean_loss": self.clean_loss,
            "layers": [r.to_dict() for r in self.layers],
            "method": self.method,
            "cancelled": self.cancelled,
            "warnings": self.warnings,
        }
        if self.grid:
            out["grid"] = self.grid_dict()
        if self.controls:
            out["controls"] = {name: c.to_dict() for name, c in self.controls.items()}
        return out

    def grid_dict(self) -> dict[str, Any]:
        return {
            "settings": [g.label() for g in self.grid],
            "thresholds": [g.threshold for g in self.grid],
            "fixed_components": [g.components for g in self.grid],
            "components": [r.grid_components for r in self.layers],
            "loss": [r.grid_loss for r in self.layers],
            "loss_change": [[x - self.clean_loss for x in r.grid_loss] for r in self.layers],
        }


Progress = Callable[[int, int, str, LayerResult], None]
Started = Callable[[str, "SweepResult"], None]


def layer_sweep(
    handle: Any,
    text: str,
    reduction: Reduction | None = None,
    method: str = "prefix",
    grid: Sequence[Reduction] = (),
    controls: Sequence[str] = (),
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    batch: int | None = None,
    started: Started | None = None,
) -> SweepResult:
    """Reduce each block in turn; progress(done, total, run label, layer result) after each.

    grid: further reductions (other thresholds or k) whose loss is measured at every
    layer from the same SVD. controls: any of exclude_first, random, shuffled, each a
    full sweep of its own. cancel() is checked between layers; a cancelled sweep returns
    the layers done so far with cancelled=True. started(run label, empty result) comes
    after each run's clean pass, with its tokens and clean loss, before its first layer.
    batch: how many layers' tails run as one batched pass (method "prefix"); default 8 on
    CUDA, 1 on the CPU, where batching saves nothing and one layer at a time keeps
    cancel and progress fine-grained.
    """
    reduction = reduction or Reduction()
    if method not in METHODS:
        raise HsviewerError(f"Method must be one of {', '.join(METHODS)}; got {method!r}.")
    unknown = set(controls) - set(CONTROLS)
    if unknown:
        raise HsviewerError(f"Unknown control {sorted(unknown)[0]!r}; choose from {', '.join(CONTROLS)}.")
    tokens = tokenize(handle, text)
    runs = [_control(name, reduction, tokens) for name in controls]
    counter = _Counter(handle.n_layers * (1 + len(runs)), progress, cancel, started)
    batch = batch or (8 if str(handle.device).startswith("cuda") else 1)
    main = _sweep(handle, tokens, reduction, method, grid, counter, "", batch)
    main.warnings = tokens.warnings
    for label, red, control_tokens in runs:
        if not counter.stop():
            main.controls[label] = _sweep(handle, control_tokens, red, method, (), counter, label, batch)
    main.cancelled = counter.cancelled
    return main


def _control(name: str, reduction: Reduction, tokens: Tokens) -> tuple[str, Reduction, Tokens]:
    if name == "exclude_first":
        return name, replace(reduction, exclude_first=True), tokens
    if name == "random":
        return name, replace(reduction, basis="random"), tokens
    import torch

    generator = torch.Generator().manual_seed(reduction.seed)
    order = torch.randperm(len(tokens), generator=generator)
    shuffled = [tokens.strings[i] for i in order.tolist()]
    return name, reduction, Tokens(tokens.ids[:, order.to(tokens.ids.device)], shuffled)


@dataclass
class _Counter:
    total: int
    progress: Progress | None
    cancel: Callable[[], bool] | None
    started: Started | None
    done: int = 0
    cancelled: bool = False

    def begin(self, label: str, result: SweepResult) -> None:
        if self.started:
            self.started(label, result)

    def stop(self) -> bool:
        self.cancelled = self.cancelled or bool(self.cancel and self.cancel())
        return self.cancelled

    def step(self, label: str, result: LayerResult) -> None:
        self.done += 1
        if self.progress:
            self.progress(self.done, self.total, label, result)


def _sweep(
    handle: Any,
    tokens: Tokens,
    reduction: Reduction,
    method: str,
    grid: Sequence[Reduction],
    counter: _Counter,
    label: str,
    batch: int,
) -> SweepResult:
    ids = tokens.ids
    clean = forward(handle, ids, raw=True)
    reference = Reference(clean.logits, ids)
    result = SweepResult(
        handle.name, tokens.strings, handle.n_layers, reduction, reference.loss, grid=list(grid), method=method
    )
    counter.begin(label, result)
    layers = list(range(handle.n_layers))
    for chunk in (layers[i : i + batch] for i in range(0, len(layers), batch)):
        if counter.stop():
            break
        hidden = [row(block_hidden(clean.hidden[layer])) for layer in chunk]
        decs = [decompose(hs, reduction) if method == "prefix" or grid else None for hs in hidden]
        if method == "prefix":
            runs = _prefix(handle, ids, clean, chunk, decs, reduction)
        else:
            runs = [_hooked(handle, ids, layer, reduction) for layer in chunk]
        for layer, hs, dec, (reduced, k, kept, logits) in zip(chunk, hidden, decs, runs, strict=True):
            layer_result = _measure(layer, hs, reduced, k, kept, reference.compare(logits))
            if grid:
                _grid(handle, ids, clean, reference, layer, dec, reduction, grid, layer_result)
            result.layers.append(layer_result)
            counter.step(label, layer_result)
    return result


def _measure(layer: int, hs: Any, reduced: Any, k: int, kept: float, metrics: LogitMetrics) -> LayerResult:
    import torch

    diff = reduced - hs
    return LayerResult(
        layer,
        k,
        kept,
        float(torch.linalg.norm(diff)),
        metrics.logit_diff_norm,
        metrics.loss,
        metrics.kl_divergence,
        torch.linalg.norm(diff, dim=-1).tolist(),
    )


def _prefix(
    handle: Any, ids: Any, clean: Run, layers: list[int], decs: list[Decomposition], reduction: Reduction
) -> list[tuple]:
    """Each layer's reduction from its SVD, then the blocks after it: one batched pass for several layers."""
    reduced = []
    for dec in decs:
        k = dec.components(reduction)
        reduced.append((*dec.reconstruct(k, reduction), k))
    if len(layers) == 1:
        logits = [tail_logits(handle, ids, clean, layers[0], reduced[0][0])]
    else:
        logits = batched_tails(handle, ids, clean.hidden, layers, [r[0] for r in reduced])
    return [(r, k, kept, z) for (r, kept, k), z in zip(reduced, logits, strict=True)]


def _grid(
    handle: Any,
    ids: Any,
    clean: Run,
    reference: Reference,
    layer: int,
    dec: Decomposition,
    reduction: Reduction,
    grid: Sequence[Reduction],
    result: LayerResult,
) -> None:
    """Loss at each grid setting from the layer's one SVD; a setting with the same k reuses its run.

    A setting that centres, excludes the first token or picks its basis differently gets
    its own decomposition of the layer's hidden state.
    """
    own = _basis(reduction)
    losses = {(result.components, own): result.loss}
    for setting in grid:
        key = _basis(setting)
        d = dec if key == own else decompose(dec.hidden, setting)
        k = d.components(setting)
        if (k, key) not in losses:
            losses[(k, key)] = reference.loss_of(tail_logits(handle, ids, clean, layer, d.reconstruct(k, setting)[0]))
        result.grid_components.append(k)
        result.grid_loss.append(losses[(k, key)])


def _basis(reduction: Reduction) -> tuple:
    """What, besides k, decides a reduction's result."""
    return (reduction.centering, reduction.exclude_first, reduction.basis, reduction.seed)


def tail_logits(handle: Any, ids: Any, clean: Run, layer: int, reduced: Any) -> Any:
    """Logits with block `layer` set to `reduced`, computing only the blocks after it."""
    hidden = reduced[None].to(block_hidden(clean.hidden[layer]).dtype)
    with replay_prefix(handle.blocks, clean.hidden, layer, hidden):
        return logits_of(handle, ids)


def _hooked(handle: Any, ids: Any, layer: int, reduction: Reduction) -> tuple:
    """The notebook's way: a full forward pass with the reduction computed in a hook at the block."""
    seen = {}

    def reducer(hidden: Any) -> Any:
        out, seen["k"], seen["kept"] = reduce_matrix(hidden.float(), reduction)
        return out

    block = handle.blocks[layer]
    with reduce_at(block, reducer), capture_outputs([block]) as captured:
        logits = logits_of(handle, ids)
    return row(captured[0]), seen["k"], seen["kept"], logits
