"""Streamed execution (core/streaming.py): weights read from their safetensors files a module at a time
give the numbers the model loaded whole gives, for reduce, sweep and corpus sweep, on every test
architecture and the default model; the plan streams what does not fit and refuses what cannot."""

import shutil

import pytest
import torch

from hsviewer.core import Reduction, layer_sweep, load_model, reduce_layer
from hsviewer.core.analyses.corpus.run import iter_corpus_sweep
from hsviewer.core.analyses.corpus.texts import CorpusText
from hsviewer.core.analyses.sweep.spec import SweepSpec
from hsviewer.core.errors import HsviewerError
from hsviewer.core.events import Finished, Progress
from hsviewer.core.model.load_plan import plan_load
from hsviewer.core.model.load_spec import LoadSpec
from hsviewer.core.model.loading import iter_load
from hsviewer.core.model.memory import GB, RUNTIME_BYTES, ModelFacts, plan_memory, plan_stream
from hsviewer.core.model.streaming import StreamStopped, bytes_read
from tests.tiny_models import ARCHITECTURES

TEXTS = [
    CorpusText(name="one", text="the museum of modern art in amsterdam is by the city square"),
    CorpusText(name="two", text="van gogh designed a wing close to the south entrance of the building"),
]


def _same_sweep(a, b):
    assert [r.components for r in b.layers] == [r.components for r in a.layers]
    for x, y in zip(a.layers, b.layers, strict=True):
        assert y.loss == pytest.approx(x.loss, rel=1e-5)
        assert y.kl_divergence == pytest.approx(x.kl_divergence, rel=1e-5, abs=1e-9)
        assert y.logit_diff_norm == pytest.approx(x.logit_diff_norm, rel=1e-5, abs=1e-7)
        assert y.hidden_diff_norm == pytest.approx(x.hidden_diff_norm, rel=1e-5, abs=1e-7)
    assert b.clean_loss == pytest.approx(a.clean_loss, rel=1e-5)


@pytest.fixture(scope="module")
def streamed(tiny_folder):
    """arch -> the tiny model of that architecture streamed from its files."""
    handles = {}

    def get(arch):
        if arch not in handles:
            handles[arch] = load_model(str(tiny_folder(arch)), device="cpu", stream="always")
        return handles[arch]

    return get


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_streamed_sweep_equals_in_memory(arch, tiny_handle, streamed, text):
    handle = streamed(arch)
    assert handle.streamed and not tiny_handle(arch).streamed
    assert all(p.device.type == "meta" for p in handle.blocks[0].parameters())  # the blocks are not in memory
    before = bytes_read()
    _same_sweep(layer_sweep(tiny_handle(arch), text, Reduction(90.0)), layer_sweep(handle, text, Reduction(90.0)))
    blocks = sum(p.numel() * p.element_size() for b in handle.blocks for p in b.parameters())
    # The clean pass reads every block, then one batched pass every block after the first reduced one:
    # (2L - 1) / L of the blocks' bytes (and the final norm twice), where a pass per layer reads L(L + 1) / 2 blocks.
    assert blocks <= bytes_read() - before < 2 * blocks


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_streamed_reduce_equals_in_memory(arch, tiny_handle, streamed, text):
    a = reduce_layer(tiny_handle(arch), text, 1, Reduction(90.0))
    b = reduce_layer(streamed(arch), text, 1, Reduction(90.0))
    assert b.components == a.components
    assert (b.original == a.original).all()
    for name in ("loss", "clean_loss", "kl_divergence", "logit_diff_norm"):
        assert getattr(b, name) == pytest.approx(getattr(a, name), rel=1e-5, abs=1e-9)
    assert b.diff_norms == pytest.approx(a.diff_norms, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_streamed_corpus_sweep_equals_in_memory(arch, tiny_handle, streamed):
    def run(handle):
        return next(
            e.result
            for e in iter_corpus_sweep(handle, TEXTS, SweepSpec(reduction=Reduction(90.0)))
            if isinstance(e, Finished)
        )

    a, b = run(tiny_handle(arch)), run(streamed(arch))
    assert len(b.texts) == len(a.texts) == 2
    for x, y in zip(a.texts, b.texts, strict=True):
        _same_sweep(x, y)


def test_the_embeddings_stay_in_memory_as_stored(streamed):
    """The head is applied once per layer in a sweep: reading it from disk each time would read it L times."""
    handle = streamed("llama")  # tied: the head is the input embedding
    embedding = handle.model.get_input_embeddings().weight
    assert embedding.device.type == "cpu"
    assert handle.model.get_output_embeddings().weight is embedding


def test_streamed_default_model_equals_in_memory(text):
    """The default GGUF streams from its bf16 conversion, computed in float32: the same numbers as that
    conversion loaded whole in float32."""
    handle = load_model("default", device="cpu", stream="always")
    assert handle.streamed and handle.dtype == "float32" and handle.plan.stored_dtype == "bfloat16"
    whole = load_model(str(handle.cache_folder), device="cpu", dtype="float32", stream="never")
    assert not whole.streamed
    short = " ".join(text.split()[:40])
    _same_sweep(layer_sweep(whole, short), layer_sweep(handle, short))


def _facts(parameters=8_030_000_000, layers=32, hidden=4096, intermediate=14336, vocab=128_256):
    return ModelFacts(
        parameters=parameters, n_layers=layers, hidden_size=hidden, intermediate_size=intermediate, vocab_size=vocab
    )


def test_an_8b_model_streams_in_6_gb_and_the_plan_says_so():
    facts = _facts()
    whole = plan_memory(facts, 32, available=int(6 * GB), budget_given=True)
    assert not whole.fits
    plan = plan_stream(facts, 32, dtype="float32", stored_dtype="bfloat16", available=int(6 * GB), budget_given=True)
    assert plan.fits and plan.streamed
    # One block in both precisions and the two embeddings as stored, not the 16 GB.
    block = (facts.parameters - 2 * 128_256 * 4096) // 32
    assert plan.resident >= 2 * 128_256 * 4096 * 2 + 6 * block
    assert plan.peak < 6 * GB
    line = plan.describe()
    assert "weights 16.06 GB bfloat16 on disk, streamed; compute float32" in line
    assert "of 6.00 GB budget; about" in line and "s per sweep" in line


def test_a_budget_below_one_block_is_refused_with_the_numbers(tiny_folder):
    with pytest.raises(HsviewerError, match=r"Not enough memory even streaming the weights: .*peak .* of 300.0 MB"):
        load_model(str(tiny_folder("llama")), device="cpu", stream="always", memory_budget=int(0.3 * GB))


def test_auto_streams_what_does_not_fit_and_never_refuses_it(tiny_folder, monkeypatch):
    """With the runtime's share made small, a budget holds a tiny model streamed but not whole."""
    import hsviewer.core.model.memory as memory

    monkeypatch.setattr(memory, "RUNTIME_BYTES", 0)
    monkeypatch.setattr(memory, "HEAD_CHUNK_BYTES", 0)
    folder, f32 = str(tiny_folder("llama")), {"device": "cpu", "dtype": "float32"}

    def plan(stream, memory_budget=None):
        return plan_load(LoadSpec(source=folder, stream=stream, memory_budget=memory_budget, **f32), tokens=8)

    whole = plan("never")
    streamed_plan = plan("always")
    budget = int((whole.peak + streamed_plan.peak) / 2 / memory.MARGIN)  # between the two
    assert streamed_plan.peak < whole.peak
    auto = plan("auto", budget)
    assert auto.streamed and auto.fits
    assert not plan("never", budget).fits


def test_streaming_needs_safetensors(tiny_folder, tmp_path):
    from safetensors.torch import load_file

    folder = tmp_path / "bin-model"
    shutil.copytree(tiny_folder("gpt2"), folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(HsviewerError, match="not safetensors: hsviewer streams only safetensors"):
        load_model(str(folder), device="cpu", stream="always")


def test_a_stop_ends_a_streamed_pass_at_its_next_module(tiny_folder, text):
    """Cancel during a streamed pass: the reader raises before its next read, and the next pass runs as usual."""
    handle = load_model(str(tiny_folder("llama")), device="cpu", stream="always")
    handle.stream.request_stop()
    with pytest.raises(StreamStopped):
        layer_sweep(handle, text)
    handle.stream.stop.clear()
    assert layer_sweep(handle, text).layers


def test_the_load_says_it_streams(tiny_folder):
    messages = [e.message for e in iter_load(LoadSpec(source=str(tiny_folder("opt")), device="cpu", stream="always"))
                if isinstance(e, Progress)]  # fmt: skip
    assert any("streamed; compute float32" in m for m in messages)
    assert any("the weights stay on disk" in m for m in messages)


def test_a_streamed_load_reads_the_embeddings_and_the_first_block_only(tiny_folder):
    """Its probes (causal? a separable head?) run the first block only: not a whole pass of the weights each."""
    before = bytes_read()
    handle = load_model(str(tiny_folder("llama")), device="cpu", stream="always")
    read = bytes_read() - before
    embedding = handle.model.get_input_embeddings().weight
    first = sum(p.numel() * 4 for p in handle.blocks[0].parameters())  # float32 files
    assert embedding.numel() * 4 <= read < embedding.numel() * 4 + 3 * first


def test_bad_stream_value_is_refused(tiny_folder):
    with pytest.raises(HsviewerError, match="Stream must be one of auto, always, never"):
        load_model(str(tiny_folder("llama")), stream="sometimes")


def test_runtime_share_is_counted_once():
    plan = plan_stream(_facts(), 32, dtype="float32", stored_dtype="bfloat16", available=int(6 * GB))
    assert plan.peak == RUNTIME_BYTES + plan.resident + plan.analysis
