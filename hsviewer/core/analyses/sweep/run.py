"""Part 4 of the notebook: reduce each block in turn and measure what changes downstream.

method="prefix" (default) reuses the clean run's block outputs up to the reduced block
and computes only the blocks after it; method="hooks" is the notebook's full forward
pass per layer with a hook, kept as the reference the fast path is tested against.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from hsviewer.core.analyses.sweep.results import (
    LayerDone,
    LayerResult,
    RunStarted,
    SweepCollector,
    SweepEvent,
    SweepResult,
)
from hsviewer.core.choices import CONTROLS, METHODS, parse_control, parse_controls
from hsviewer.core.errors import HsviewerError
from hsviewer.core.events import Finished, Progress
from hsviewer.core.linalg.measures import measure
from hsviewer.core.linalg.reduction import Decomposition, Reduction, check_tokens, decompose, reduce_matrix
from hsviewer.core.model.anatomy import block_hidden
from hsviewer.core.model.memory import free_bytes, sweep_batch
from hsviewer.core.passes.batched import batched_tails
from hsviewer.core.passes.clean import CleanReference, ForwardPass, LogitMetrics, clean_forward, first_row, pass_states
from hsviewer.core.passes.hooks import capture_outputs, replace_block_output, replay_prefix
from hsviewer.core.passes.text import Tokens, shuffled, tokenize

if TYPE_CHECKING:
    from hsviewer.core.model.loading import ModelHandle

__all__ = [
    "CONTROLS",
    "METHODS",
    "LayerDone",
    "LayerResult",
    "RunStarted",
    "SweepCollector",
    "SweepResult",
    "iter_sweep",
    "layer_sweep",
    "tail_states",
]


def iter_sweep(
    handle: ModelHandle,
    text: str,
    reduction: Reduction | None = None,
    *,
    method: str = "prefix",
    grid: Sequence[Reduction] = (),
    controls: Sequence[str] = (),
    batch: int | None = None,
) -> Generator[SweepEvent, None, None]:
    """Reduce each block in turn, yielding an event per clean pass, run start and layer.

    grid: further reductions (other thresholds or k) whose loss is measured at every
    layer from the same SVD. controls: spellings of CONTROLS (choices.CONTROL_SPELLINGS:
    exclude_first:4, exclude_massive:100), each a full sweep of its own after the plain one.
    Stop iterating to cancel: a consumer that does keeps the layers done so far (SweepCollector).
    batch: how many layers' tails run as one batched pass (method "prefix"); by default on CUDA
    as many as its free memory holds (memory.sweep_batch), 1 on the CPU, where batching saves
    nothing and one layer at a time keeps cancelling and progress fine-grained.
    """
    reduction = reduction or Reduction()
    check_options(method, controls)
    tokens = tokenize(handle, text)
    handle.check_memory(len(tokens))
    runs = [("", reduction, tokens), *(_control(name, reduction, tokens) for name in controls)]
    labels = [label for label, _, _ in runs]
    total = handle.n_layers * len(runs)
    collector, done = SweepCollector(), 0
    for label, run_reduction, run_tokens in runs:
        yield Progress(message=f"Clean pass over {len(run_tokens)} tokens{_suffix(label)}…", done=done, total=total)
        clean = clean_forward(handle, run_tokens.ids, raw=True)
        reference = yield from CleanReference.build(handle, clean.states, run_tokens.ids, done=done, total=total)
        run = SweepResult(
            model=handle.name,
            tokens=run_tokens.strings,
            n_layers=handle.n_layers,
            reduction=run_reduction,
            clean_loss=reference.loss,
            grid=list(grid) if label == "" else [],
            method=method,
            warnings=tokens.warnings if label == "" else [],
        )
        event: SweepEvent = RunStarted(label=label, run=run, runs=labels, hidden_size=handle.hidden_size)
        collector.add(event)
        yield event
        rows = batch or default_batch(handle, len(run_tokens))
        if handle.streamed and rows < handle.n_layers:
            passes = -(-handle.n_layers // rows)
            yield Progress(message=f"Streaming: {rows} layers' tails per pass, what the memory holds ({passes} passes)")
        for layer_result in _layers(handle, run_tokens, run_reduction, method, run.grid, clean, reference, rows):
            done += 1
            event = LayerDone(label=label, done=done, total=total, result=layer_result)
            collector.add(event)
            yield event
    assert collector.result is not None  # the plain run always starts first
    yield Finished(result=collector.result)


def layer_sweep(
    handle: ModelHandle,
    text: str,
    reduction: Reduction | None = None,
    *,
    method: str = "prefix",
    grid: Sequence[Reduction] = (),
    controls: Sequence[str] = (),
    batch: int | None = None,
    cancel: Callable[[], bool] | None = None,
) -> SweepResult:
    """iter_sweep to its end; cancel() is asked after every event, and a cancelled sweep
    returns the layers done so far with cancelled=True."""
    events = iter_sweep(handle, text, reduction, method=method, grid=grid, controls=controls, batch=batch)
    collector = SweepCollector()
    for event in events:
        if isinstance(event, Finished):
            return event.result
        collector.add(event)
        if cancel is not None and cancel():
            events.close()
            break
    result = collector.cancelled()
    if result is None:
        raise HsviewerError("The sweep was cancelled before its first layer.")
    return result


def check_options(method: str, controls: Sequence[str]) -> None:
    """The method and controls (their spellings: choices.CONTROL_SPELLINGS), before any text is tokenised."""
    if method not in METHODS:
        raise HsviewerError(f"Method must be one of {', '.join(METHODS)}; got {method!r}.")
    parse_controls(controls)


def default_batch(handle: ModelHandle, tokens: int) -> int:
    """On CUDA, and for a model streamed from disk (each batched pass reads the weights once), as many
    rows as the free memory (or what is left of the budget) holds beside the clean run; 1 elsewhere."""
    if handle.device.type == "cuda":
        free = free_bytes(str(handle.device))
    elif handle.streamed:
        free = free_bytes(str(handle.device), handle.memory_budget)
    else:
        return 1
    return sweep_batch(handle.facts(), tokens, handle.dtype, free)


def _suffix(label: str) -> str:
    return f" ({label})" if label else ""


def _control(spelling: str, reduction: Reduction, tokens: Tokens) -> tuple[str, Reduction, Tokens]:
    """A control's run: its label, its reduction and its tokens; a text too short for exclude_first:N
    is refused here, before the plain run, rather than after it."""
    control = parse_control(spelling)
    name, label = control.name, control.label
    if name == "exclude_first":
        excluding = replace(reduction, exclude_first=int(control.value or 1))
        check_tokens(len(tokens), excluding)
        return label, excluding, tokens
    if name == "exclude_massive":
        return label, replace(reduction, exclude_massive=control.value), tokens
    if name == "random":
        return label, replace(reduction, basis="random"), tokens
    return label, reduction, shuffled(tokens, reduction.seed)


def _layers(
    handle: ModelHandle,
    tokens: Tokens,
    reduction: Reduction,
    method: str,
    grid: Sequence[Reduction],
    clean: ForwardPass,
    reference: CleanReference,
    batch: int,
) -> Iterator[LayerResult]:
    """Each block reduced in turn, `batch` blocks' tails per forward pass."""
    ids, layers = tokens.ids, list(range(handle.n_layers))
    for chunk in (layers[i : i + batch] for i in range(0, len(layers), batch)):
        hidden = [first_row(block_hidden(clean.hidden[layer])) for layer in chunk]
        # The hooks method reduces inside its hook; its own SVD here serves the measures only.
        decs = [decompose(hs, reduction) for hs in hidden]
        if method == "prefix":
            runs = _prefix(handle, ids, clean, chunk, decs, reduction)
        else:
            runs = [_hooked(handle, ids, layer, reduction) for layer in chunk]
        for layer, hs, dec, run in zip(chunk, hidden, decs, runs, strict=True):
            following = _following(clean, layer)
            layer_result = _measure(layer, hs, run, reference.compare(run.states), dec, tokens.strings, following)
            if reduction.exclude_massive is not None:
                layer_result.excluded_tokens = dec.excluded
            if grid:
                _grid(handle, ids, clean, reference, layer, dec, reduction, grid, layer_result)
            yield layer_result


class _ReducedRun(NamedTuple):
    """One layer's reduced hidden state, and the states the logits of the pass it went into come from."""

    hidden: torch.Tensor
    components: int
    variance_kept: float
    states: torch.Tensor


def _following(clean: ForwardPass, layer: int) -> torch.Tensor | None:
    """The clean hidden state of the block after `layer` (None after the last), for the linearity."""
    recorded = clean.hidden.get(layer + 1)
    return None if recorded is None else first_row(block_hidden(recorded))


def _measure(
    layer: int,
    hs: torch.Tensor,
    run: _ReducedRun,
    metrics: LogitMetrics,
    dec: Decomposition,
    tokens: list[str],
    following: torch.Tensor | None,
) -> LayerResult:
    """The layer's result; its measures are of the clean hidden state hs (and the next one's), not the reduced one."""
    diff = run.hidden - hs
    s, raw = (x.detach().to("cpu").double().numpy() for x in (dec.s, hs))
    after = None if following is None else following.detach().to("cpu").double().numpy()
    return LayerResult(
        layer=layer,
        components=run.components,
        variance_kept=run.variance_kept,
        hidden_diff_norm=float(torch.linalg.norm(diff)),
        logit_diff_norm=metrics.logit_diff_norm,
        loss=metrics.loss,
        kl_divergence=metrics.kl_divergence,
        token_diff_norms=torch.linalg.norm(diff, dim=-1).tolist(),
        measures=measure(s, raw, tokens, after),
    )


def _prefix(
    handle: ModelHandle,
    ids: torch.Tensor,
    clean: ForwardPass,
    layers: list[int],
    decs: list[Decomposition],
    reduction: Reduction,
) -> list[_ReducedRun]:
    """Each layer's reduction from its SVD, then the blocks after it: one batched pass for several layers."""
    ks = [dec.choose_components(reduction) for dec in decs]
    reduced = [dec.reconstruct(k, reduction) for dec, k in zip(decs, ks, strict=True)]
    states = _tails(handle, ids, clean, layers, [hidden for hidden, _ in reduced])
    return [_ReducedRun(hidden, k, kept, z) for (hidden, kept), k, z in zip(reduced, ks, states, strict=True)]


def _tails(
    handle: ModelHandle, ids: torch.Tensor, clean: ForwardPass, layers: list[int], reduced: list[torch.Tensor]
) -> list[torch.Tensor]:
    """The layers' tails in one batched pass; one layer a pass when that fails: out of GPU memory,
    or blocks taking batch-shaped arguments the batch's cut cannot see (ALiBi's batch x heads rows in Bloom)."""
    if len(layers) > 1:
        with contextlib.suppress(RuntimeError, ValueError, IndexError):
            return batched_tails(handle, ids, clean.hidden, layers, reduced)
    return [tail_states(handle, ids, clean, layer, hidden) for layer, hidden in zip(layers, reduced, strict=True)]


def _grid(
    handle: ModelHandle,
    ids: torch.Tensor,
    clean: ForwardPass,
    reference: CleanReference,
    layer: int,
    dec: Decomposition,
    reduction: Reduction,
    grid: Sequence[Reduction],
    result: LayerResult,
) -> None:
    """Loss at each grid setting from the layer's one SVD; a setting with the same k reuses its run.

    A setting that centres, excludes tokens or picks its basis differently gets
    its own decomposition of the layer's hidden state.
    """
    own = _basis(reduction)
    losses = {(result.components, own): result.loss}
    for setting in grid:
        key = _basis(setting)
        d = dec if key == own else decompose(dec.hidden, setting)
        k = d.choose_components(setting)
        if (k, key) not in losses:
            losses[(k, key)] = reference.loss_of(tail_states(handle, ids, clean, layer, d.reconstruct(k, setting)[0]))
        result.grid_components.append(k)
        result.grid_loss.append(losses[(k, key)])


def _basis(reduction: Reduction) -> tuple[str, int, float | None, str, int]:
    """What, besides k, decides a reduction's result."""
    return (reduction.centering, reduction.exclude_first, reduction.exclude_massive, reduction.basis, reduction.seed)


def tail_states(
    handle: ModelHandle, ids: torch.Tensor, clean: ForwardPass, layer: int, reduced: torch.Tensor
) -> torch.Tensor:
    """The (T, X) states of a pass with block `layer` set to `reduced`, computing only the blocks after it."""
    hidden = reduced[None].to(block_hidden(clean.hidden[layer]).dtype)
    with replay_prefix(handle.blocks, clean.hidden, layer, hidden):
        return pass_states(handle, ids)[0]


def _hooked(handle: ModelHandle, ids: torch.Tensor, layer: int, reduction: Reduction) -> _ReducedRun:
    """The notebook's way: a full forward pass with the reduction computed in a hook at the block."""
    seen: dict[str, Any] = {}

    def reducer(hidden: torch.Tensor) -> torch.Tensor:
        out, seen["k"], seen["kept"] = reduce_matrix(hidden.float(), reduction)
        return out

    block = handle.blocks[layer]
    with replace_block_output(block, reducer), capture_outputs([block]) as captured:
        states = pass_states(handle, ids)[0]
    return _ReducedRun(first_row(captured[0]), seen["k"], seen["kept"], states)
