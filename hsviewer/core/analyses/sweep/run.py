"""Part 4 of the notebook: reduce each block in turn and measure what changes downstream.

method="prefix" (default) reuses the clean run's block outputs up to the reduced block
and computes only the blocks after it; method="hooks" is the notebook's full forward
pass per layer with a hook, kept as the reference the fast path is tested against.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, replace
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
from hsviewer.core.analyses.sweep.spec import SweepSpec
from hsviewer.core.choices import CONTROLS, METHODS, parse_control
from hsviewer.core.errors import HsviewerError
from hsviewer.core.events import Finished, Progress
from hsviewer.core.linalg.measures import measure
from hsviewer.core.linalg.reduction import Decomposition, Reduction, check_tokens, decompose, reduce_matrix
from hsviewer.core.model.anatomy import block_hidden
from hsviewer.core.model.memory import free_bytes, sweep_batch
from hsviewer.core.passes.batched import batched_tails
from hsviewer.core.passes.clean import CleanReference, ForwardPass, clean_forward, first_row, pass_states
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
    "SweepSpec",
    "iter_sweep",
    "layer_sweep",
    "tail_states",
]


def iter_sweep(handle: ModelHandle, text: str, spec: SweepSpec | None = None) -> Generator[SweepEvent, None, None]:
    """Reduce each block in turn as the spec says, yielding an event per clean pass, run start and layer.

    The grid's reductions are measured at every layer from the same SVD; each control is a full sweep
    of its own after the plain one. Stop iterating to cancel: a consumer that does keeps the layers done
    so far (SweepCollector). spec.batch: how many layers' tails run as one batched pass (method "prefix");
    by default on CUDA as many as its free memory holds (memory.sweep_batch), 1 on the CPU, where batching
    saves nothing and one layer at a time keeps cancelling and progress fine-grained.
    """
    spec = spec or SweepSpec()
    reduction = spec.reduction
    tokens = tokenize(handle, text)
    handle.check_memory(len(tokens))
    runs = [("", reduction, tokens), *(_control(name, reduction, tokens) for name in spec.controls)]
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
            grid=list(spec.grid) if label == "" else [],
            method=spec.method,
            warnings=tokens.warnings if label == "" else [],
        )
        event: SweepEvent = RunStarted(label=label, run=run, runs=labels, hidden_size=handle.hidden_size)
        collector.add(event)
        yield event
        rows = spec.batch or default_batch(handle, len(run_tokens))
        if handle.streamed and rows < handle.n_layers:
            passes = -(-handle.n_layers // rows)
            yield Progress(message=f"Streaming: {rows} layers' tails per pass, what the memory holds ({passes} passes)")
        state = _RunPass(handle, run_tokens, run_reduction, spec.method, run.grid, clean, reference, rows)
        for layer_result in _layers(state):
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
    """iter_sweep to its end, with the spec the keywords make; cancel() is asked after every event,
    and a cancelled sweep returns the layers done so far with cancelled=True."""
    spec = SweepSpec(reduction=reduction or Reduction(), grid=grid, controls=controls, method=method, batch=batch)
    events = iter_sweep(handle, text, spec)
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


@dataclass(frozen=True)
class _RunPass:
    """What every layer of one run (the plain sweep's or a control's) shares: the tokens, the reduction,
    the method, the grid, the clean pass and its reference, and how many layers' tails go in one pass."""

    handle: ModelHandle
    tokens: Tokens
    reduction: Reduction
    method: str
    grid: Sequence[Reduction]
    clean: ForwardPass
    reference: CleanReference
    batch: int

    @property
    def ids(self) -> torch.Tensor:
        return self.tokens.ids


def _layers(run: _RunPass) -> Iterator[LayerResult]:
    """Each block reduced in turn, `run.batch` blocks' tails per forward pass."""
    layers = list(range(run.handle.n_layers))
    for chunk in (layers[i : i + run.batch] for i in range(0, len(layers), run.batch)):
        hidden = [first_row(block_hidden(run.clean.hidden[layer])) for layer in chunk]
        # The hooks method reduces inside its hook; its own SVD here serves the measures only.
        decs = [decompose(hs, run.reduction) for hs in hidden]
        if run.method == "prefix":
            reduced = _prefix(run, chunk, decs)
        else:
            reduced = [_hooked(run.handle, run.ids, layer, run.reduction) for layer in chunk]
        for layer, hs, dec, one in zip(chunk, hidden, decs, reduced, strict=True):
            layer_result = _measure(run, layer, hs, dec, one)
            if run.reduction.exclude_massive is not None:
                layer_result.excluded_tokens = dec.excluded
            if run.grid:
                _grid(run, layer, dec, layer_result)
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


def _measure(run: _RunPass, layer: int, hs: torch.Tensor, dec: Decomposition, reduced: _ReducedRun) -> LayerResult:
    """The layer's result; its measures are of the clean hidden state hs (and the next one's), not the reduced one."""
    metrics = run.reference.compare(reduced.states)
    following = _following(run.clean, layer)
    diff = reduced.hidden - hs
    s, raw = (x.detach().to("cpu").double().numpy() for x in (dec.s, hs))
    after = None if following is None else following.detach().to("cpu").double().numpy()
    return LayerResult(
        layer=layer,
        components=reduced.components,
        variance_kept=reduced.variance_kept,
        hidden_diff_norm=float(torch.linalg.norm(diff)),
        logit_diff_norm=metrics.logit_diff_norm,
        loss=metrics.loss,
        kl_divergence=metrics.kl_divergence,
        token_diff_norms=torch.linalg.norm(diff, dim=-1).tolist(),
        measures=measure(s, raw, run.tokens.strings, after),
    )


def _prefix(run: _RunPass, layers: list[int], decs: list[Decomposition]) -> list[_ReducedRun]:
    """Each layer's reduction from its SVD, then the blocks after it: one batched pass for several layers."""
    ks = [dec.choose_components(run.reduction) for dec in decs]
    reduced = [dec.reconstruct(k, run.reduction) for dec, k in zip(decs, ks, strict=True)]
    states = _tails(run, layers, [hidden for hidden, _ in reduced])
    return [_ReducedRun(hidden, k, kept, z) for (hidden, kept), k, z in zip(reduced, ks, states, strict=True)]


def _tails(run: _RunPass, layers: list[int], reduced: list[torch.Tensor]) -> list[torch.Tensor]:
    """The layers' tails in one batched pass; one layer a pass when that fails: out of GPU memory,
    or blocks taking batch-shaped arguments the batch's cut cannot see (ALiBi's batch x heads rows in Bloom)."""
    handle, ids, clean = run.handle, run.ids, run.clean
    if len(layers) > 1:
        with contextlib.suppress(RuntimeError, ValueError, IndexError):
            return batched_tails(handle, ids, clean.hidden, layers, reduced)
    return [tail_states(handle, ids, clean, layer, hidden) for layer, hidden in zip(layers, reduced, strict=True)]


def _grid(run: _RunPass, layer: int, dec: Decomposition, result: LayerResult) -> None:
    """Loss at each grid setting from the layer's one SVD; a setting with the same k reuses its run.

    A setting that centres, excludes tokens or picks its basis differently gets
    its own decomposition of the layer's hidden state.
    """
    own = _basis(run.reduction)
    losses = {(result.components, own): result.loss}
    for setting in run.grid:
        key = _basis(setting)
        d = dec if key == own else decompose(dec.hidden, setting)
        k = d.choose_components(setting)
        if (k, key) not in losses:
            states = tail_states(run.handle, run.ids, run.clean, layer, d.reconstruct(k, setting)[0])
            losses[(k, key)] = run.reference.loss_of(states)
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
