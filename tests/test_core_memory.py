"""Memory plans: the arithmetic by hand, the precision `auto` picks, and refusals with numbers."""

from __future__ import annotations

import pytest

from hsviewer.core.errors import HsviewerError
from hsviewer.core.model.memory import (
    GB,
    RUNTIME_BYTES,
    ModelFacts,
    parse_size,
    plan_memory,
    refusal,
    sweep_batch,
    sweep_row_bytes,
)

# SmolLM2-135M's shape, and an 8B Llama's
SMALL = ModelFacts(parameters=134_515_008, n_layers=30, hidden_size=576, intermediate_size=1536, vocab_size=49152)
LARGE = ModelFacts(parameters=8_030_261_248, n_layers=32, hidden_size=4096, intermediate_size=14336, vocab_size=128256)


def test_a_plan_adds_weights_analysis_and_the_runtime():
    plan = plan_memory(SMALL, 164, dtype="float32", available=int(20 * GB))
    assert plan.weights == 134_515_008 * 4
    states = 30 * 164 * 576 * 4
    activations = 6 * 164 * 1536 * 4
    svd = 6 * 164 * 164 * 4
    logits = 2 * 164 * 49152 * 4 + 5 * 32 * 2**20  # the clean logits are kept at this size
    assert plan.analysis == states + activations + svd + logits
    assert plan.peak == RUNTIME_BYTES + plan.weights + plan.analysis
    assert plan.fits and plan.conversion == 0


def test_long_texts_do_not_keep_the_clean_logits():
    plan = plan_memory(SMALL, 8192, dtype="float32", available=int(20 * GB))
    assert plan.analysis == 30 * 8192 * 576 * 4 + 6 * 8192 * 1536 * 4 + 6 * 8192 * 576 * 4 + 5 * 32 * 2**20


def test_the_plan_is_near_what_was_measured():
    """Peak resident memory of `hsviewer reduce` on the default model (this project's development machine)."""
    for tokens, measured in ((164, 1.19 * GB), (2130, 1.65 * GB), (8192, 2.24 * GB)):
        peak = plan_memory(SMALL, tokens, dtype="float32", available=int(64 * GB)).peak
        assert abs(peak - measured) / measured < 0.25, (tokens, peak / GB)


def test_auto_takes_float32_when_it_fits_and_bfloat16_when_only_that_does():
    assert plan_memory(LARGE, 512, available=int(64 * GB)).dtype == "float32"
    plan = plan_memory(LARGE, 512, available=int(24 * GB))
    assert plan.dtype == "bfloat16" and plan.fits
    assert plan.weights == 8_030_261_248 * 2
    assert plan_memory(LARGE, 512, available=int(24 * GB), bfloat16_ok=False).dtype == "float16"


def test_a_first_gguf_conversion_counts_when_it_is_ahead():
    facts = ModelFacts(**{**SMALL.__dict__, "gguf_to_convert": True})
    plan = plan_memory(facts, 164, dtype="float32", available=int(20 * GB))
    largest = max(SMALL.vocab_size, SMALL.intermediate_size) * SMALL.hidden_size
    assert plan.conversion == 134_515_008 * 4 + 2 * 4 * largest  # the whole model is less than a shard
    large = plan_memory(ModelFacts(**{**LARGE.__dict__, "gguf_to_convert": True}), 512, available=int(64 * GB))
    assert large.conversion < 6 * GB  # a shard and the largest tensor twice, not 7 bytes per parameter (56 GB)
    assert plan.peak == RUNTIME_BYTES + max(plan.conversion, plan.weights + plan.analysis)


def test_too_little_memory_is_refused_with_numbers_and_what_to_try():
    plan = plan_memory(LARGE, 512, available=int(8 * GB), budget_given=True)
    assert not plan.fits and plan.dtype == "bfloat16"
    message = refusal(plan)
    assert "16.06 GB" in message and "8.00 GB budget" in message
    assert "GPU" in message
    message = refusal(plan_memory(LARGE, 512, dtype="float32", available=int(8 * GB)))
    assert "--dtype bfloat16" in message


@pytest.mark.parametrize(
    ("text", "size"),
    [("6GB", 6 * 10**9), ("512 MB", 512 * 10**6), ("8g", 8 * 10**9), ("1.5GiB", 3 * 2**29), ("1000", 1000)],
)
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "six", "-1GB", "0", "5 PB", "GB", "6 iB"])
def test_bad_sizes(text):
    with pytest.raises(HsviewerError):
        parse_size(text)


def test_unknown_dtype():
    with pytest.raises(HsviewerError, match="Unknown dtype"):
        plan_memory(SMALL, 10, dtype="int8", available=10**10)


def test_a_batched_sweep_row_costs_its_states_activations_and_svd():
    # per token: 4 hidden states (input, output, cut rows, head input), 6 MLP-wide activations, the SVD in float32
    assert sweep_row_bytes(SMALL, 8192, "float32") == 8192 * (4 * 576 * 4 + 6 * 1536 * 4 + (3 * 576 + 2 * 576) * 4)
    assert sweep_row_bytes(SMALL, 100, "bfloat16") == 100 * (4 * 576 * 2 + 6 * 1536 * 2 + (3 * 100 + 2 * 576) * 4)


def test_the_sweep_batch_is_what_free_memory_holds_from_one_row_to_every_layer():
    row = 8192 * 57_600  # sweep_row_bytes(SMALL, 8192, "float32"), 0.47 GB
    chunks = 5 * 32 * 2**20
    assert sweep_batch(SMALL, 8192, "float32", free=int(80 * GB)) == 30  # an H100: every layer in one pass
    assert sweep_batch(SMALL, 8192, "float32", free=int(2 * GB)) == int((0.85 * 2 * GB - chunks) // row) == 3
    assert sweep_batch(SMALL, 8192, "float32", free=int(0.3 * GB)) == 1  # too little for one: still one
    assert sweep_batch(SMALL, 8192, "float32", free=0) == 1
    # an 8B model, 8,192 tokens in bfloat16, 20 GB free: 2.35 GB a row
    assert sweep_batch(LARGE, 8192, "bfloat16", free=int(20 * GB)) == 7
