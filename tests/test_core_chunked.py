"""Logit metrics from the LM head a chunk of tokens at a time equal the whole-tensor computation by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsviewer.core import Reduction, layer_sweep, reduce_layer
from hsviewer.core.analyses.reduce.spec import ReduceSpec
from hsviewer.core.model.anatomy import separable_head
from hsviewer.core.passes import clean as runs_module
from hsviewer.core.passes.clean import CleanReference, pass_states
from hsviewer.core.passes.text import tokenize
from tests.core_helpers import cross_entropy_by_hand, kl_by_hand
from tests.tiny_models import ARCHITECTURES


def full_logits(handle, ids) -> np.ndarray:
    with torch.no_grad():
        return handle.model(ids, use_cache=False).logits[0].double().numpy()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_tiny_architecture_has_a_separable_head(tiny_handle, arch):
    handle = tiny_handle(arch)
    assert handle.head is handle.model.get_output_embeddings()


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("cached", [True, False])
def test_chunked_metrics_equal_whole_ones(tiny_handle, arch, cached, text, monkeypatch):
    handle = tiny_handle(arch)
    ids = tokenize(handle, text).ids
    vocab = handle.model.get_output_embeddings().weight.shape[0]
    monkeypatch.setattr(runs_module, "CHUNK_BYTES", 4 * vocab * 5)  # five tokens a chunk
    monkeypatch.setattr(runs_module, "CACHE_BYTES", 10**12 if cached else 0)
    clean_states = pass_states(handle, ids)[0]
    reference = CleanReference(handle, clean_states, ids)
    assert len(reference.slices) == -(-ids.shape[1] // 5) > 2
    torch.manual_seed(0)
    states = clean_states + 3 * clean_states.std() * torch.randn_like(clean_states)
    metrics = reference.compare(states)

    clean = full_logits(handle, ids)
    head = handle.model.get_output_embeddings()
    with torch.no_grad():
        logits = head(states).double().numpy()
    token_ids = ids[0].numpy()
    assert reference.loss == pytest.approx(cross_entropy_by_hand(clean, token_ids), rel=1e-5)
    assert metrics.loss == pytest.approx(cross_entropy_by_hand(logits, token_ids), rel=1e-5)
    assert metrics.kl_divergence == pytest.approx(kl_by_hand(clean, logits), rel=1e-4, abs=1e-7)
    assert metrics.logit_diff_norm == pytest.approx(np.linalg.norm(logits - clean), rel=1e-5)
    assert metrics.kl_divergence > 1e-4  # the change was large enough to measure


def test_a_pass_keeps_the_head_input_not_the_logits(tiny_handle, text):
    handle = tiny_handle("llama")
    ids = tokenize(handle, text).ids
    states = pass_states(handle, ids)
    assert states.shape == (1, ids.shape[1], handle.hidden_size)


def test_without_a_separable_head_the_metrics_use_the_models_logits(tiny_handle, text, monkeypatch):
    handle = tiny_handle("gpt2")
    with_head = layer_sweep(handle, text, Reduction(90.0))
    monkeypatch.setattr(handle, "head", None)
    assert pass_states(handle, tokenize(handle, text).ids).shape[-1] == handle.model.config.vocab_size
    without = layer_sweep(handle, text, Reduction(90.0))
    for a, b in zip(with_head.layers, without.layers, strict=True):
        assert a.loss == pytest.approx(b.loss, rel=1e-5)
        assert a.kl_divergence == pytest.approx(b.kl_divergence, rel=1e-4, abs=1e-7)
        assert a.logit_diff_norm == pytest.approx(b.logit_diff_norm, rel=1e-5)


def test_a_head_followed_by_soft_capping_is_not_split_off():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(
        vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=64, final_logit_softcapping=2.0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Gemma2ForCausalLM(config).eval()
    ids = torch.arange(4)[None]
    assert separable_head(model, ids) is None
    config.final_logit_softcapping = None
    assert separable_head(Gemma2ForCausalLM(config).eval(), ids) is not None


def test_reduce_layer_diff_norms_match_a_hooked_pass(tiny_handle, text):
    """The reduced pass measures its distance from the clean one per block without keeping its states."""
    handle = tiny_handle("gpt_neox")
    result = reduce_layer(handle, text, 1, Reduction(80.0))
    assert result.diff_norms[0] == 0.0
    assert result.diff_norms[1] == pytest.approx(np.linalg.norm(result.difference), rel=1e-5)
    assert all(n > 0 for n in result.diff_norms[1:])


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_run_compared_with_itself_moved_nothing(arch, tiny_handle, text):
    handle = tiny_handle(arch)
    ids = tokenize(handle, text).ids
    states = pass_states(handle, ids)[0]
    metrics = CleanReference(handle, states, ids).compare(states.clone())
    assert metrics.logit_diff_norm == 0.0
    assert metrics.kl_divergence == pytest.approx(0.0, abs=1e-6) and metrics.kl_divergence >= 0.0


def progress_until(events, stop_type):
    """(message, done, total) of each Progress event before the first event of stop_type; the type of that one."""
    from hsviewer.core.events import Progress

    seen = []
    for event in events:
        if isinstance(event, stop_type):
            events.close()
            return seen
        assert isinstance(event, Progress)
        seen.append((event.message, event.done, event.total))
    raise AssertionError(f"no {stop_type.__name__}")


@pytest.mark.parametrize("cached", [True, False])
def test_the_sweep_reports_the_clean_pass_and_each_clean_logits_chunk(tiny_handle, text, cached, monkeypatch):
    from hsviewer.core import iter_sweep
    from hsviewer.core.analyses.sweep.results import RunStarted

    handle = tiny_handle("llama")
    n = len(tokenize(handle, text))
    vocab = handle.model.get_output_embeddings().weight.shape[0]
    monkeypatch.setattr(runs_module, "CHUNK_BYTES", 4 * vocab * 8)  # eight tokens a chunk
    monkeypatch.setattr(runs_module, "CACHE_BYTES", 10**12 if cached else 0)
    seen = progress_until(iter_sweep(handle, text), RunStarted)
    chunks = [(f"Clean logits: tokens {i + 1} to {min(i + 8, n)} of {n}", 0, 3) for i in range(0, n, 8)]
    assert seen == [(f"Clean pass over {n} tokens…", 0, 3), *chunks] and len(chunks) == 3


def test_a_reduction_reports_the_clean_pass_and_its_logits_before_the_reduced_pass(tiny_handle, text, monkeypatch):
    from hsviewer.core.analyses.reduce.run import iter_reduce
    from hsviewer.core.events import Finished

    handle = tiny_handle("llama")
    n = len(tokenize(handle, text))
    vocab = handle.model.get_output_embeddings().weight.shape[0]
    monkeypatch.setattr(runs_module, "CHUNK_BYTES", 4 * vocab * 10)
    seen = progress_until(iter_reduce(handle, text, ReduceSpec(layer=1)), Finished)
    assert seen == [
        (f"Clean pass over {n} tokens…", 0, 2),
        *[(f"Clean logits: tokens {i + 1} to {min(i + 10, n)} of {n}", 0, 2) for i in range(0, n, 10)],
        ("Forward pass with layer 1 reduced", 1, 2),
    ]
