"""The batched sweep (several layers' tails in one pass, as on CUDA) equals the one-layer-at-a-time sweep,
and each row is computed only from its own reduced block on."""

import pytest
import torch

from hsviewer.core import Reduction, iter_sweep, layer_sweep, load_model
from hsviewer.core.analyses.sweep.run import LayerDone, tail_states
from hsviewer.core.analyses.sweep.spec import SweepSpec
from hsviewer.core.model.anatomy import block_hidden
from hsviewer.core.passes.batched import batched_tails
from hsviewer.core.passes.clean import clean_forward, first_row
from hsviewer.core.passes.text import tokenize
from tests.tiny_models import ARCHITECTURES, make_tiny_model


@pytest.fixture(scope="module")
def five_layers(tmp_path_factory):
    """arch -> a tiny model of that architecture five blocks deep, loaded once per module."""
    handles = {}

    def get(arch):
        if arch not in handles:
            folder = make_tiny_model(tmp_path_factory.mktemp(arch), arch, n_layers=5)
            handles[arch] = load_model(str(folder), device="cpu")
        return handles[arch]

    return get


@pytest.mark.parametrize("batch", [3, 5])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_batched_tails_equal_single_tails(arch, batch, five_layers, text):
    handle = five_layers(arch)
    single = layer_sweep(handle, text, Reduction(90.0), batch=1)
    batched = layer_sweep(handle, text, Reduction(90.0), batch=batch)
    assert [r.components for r in batched.layers] == [r.components for r in single.layers]
    for a, b in zip(single.layers, batched.layers, strict=True):
        assert b.loss == pytest.approx(a.loss, rel=1e-5)
        assert b.logit_diff_norm == pytest.approx(a.logit_diff_norm, rel=1e-4, abs=1e-5)
        assert b.kl_divergence == pytest.approx(a.kl_divergence, rel=1e-4, abs=1e-7)
    # Each layer's reduction changes the loss differently: the batch rows are not all one layer.
    assert len({round(r.loss, 6) for r in batched.layers}) > 1


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_block_computes_only_the_rows_reduced_before_it(arch, five_layers, text):
    """Batch of all five layers: block j computes the j rows reduced at blocks 0..j-1, not all five."""
    handle = five_layers(arch)
    rows: dict[int, set[int]] = {j: set() for j in range(5)}

    def counter(j):
        def count(module, args):
            rows[j].update(a.shape[0] for a in args if isinstance(a, torch.Tensor) and a.dim() == 3)

        return count

    leaves = [(j, m) for j, block in enumerate(handle.blocks) for m in block.modules() if not list(m.children())]
    hooks = [m.register_forward_pre_hook(counter(j)) for j, m in leaves]
    try:
        layer_sweep(handle, text, Reduction(90.0), batch=5)
    finally:
        for hook in hooks:
            hook.remove()
    # Block 0 only in the clean pass (the batched pass replays it), one row; block j then j rows.
    assert {j: max(seen) for j, seen in rows.items()} == {0: 1, 1: 1, 2: 2, 3: 3, 4: 4}


@pytest.mark.parametrize("arch", ["gpt_neo", "opt"])  # batch-sized attention mask; position ids
def test_rows_in_any_order_each_get_their_own_tail(arch, five_layers, text):
    handle = five_layers(arch)
    ids = tokenize(handle, text).ids
    clean = clean_forward(handle, ids, raw=True)
    layers = [3, 0, 2]
    reduced = [0.5 * first_row(block_hidden(clean.hidden[layer])) for layer in layers]
    batched = batched_tails(handle, ids, clean.hidden, layers, reduced)
    for layer, hidden, states in zip(layers, reduced, batched, strict=True):
        torch.testing.assert_close(states, tail_states(handle, ids, clean, layer, hidden), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(batched[0], batched[1], atol=1e-3)


def test_batched_sweep_still_reports_every_layer(tiny_model, text):
    events = iter_sweep(tiny_model, text, SweepSpec(batch=2))
    seen = [(e.done, e.total, e.result.layer) for e in events if isinstance(e, LayerDone)]
    assert seen == [(1, 3, 0), (2, 3, 1), (3, 3, 2)]


def test_on_the_cpu_a_sweep_runs_one_layer_a_pass(tiny_model, text, monkeypatch):
    from hsviewer.core.analyses.sweep import run as sweep

    def fail(*args, **kwargs):
        raise AssertionError("batched on the CPU")

    monkeypatch.setattr(sweep, "batched_tails", fail)
    assert len(layer_sweep(tiny_model, text).layers) == 3


def test_on_cuda_the_batch_is_what_free_memory_holds(monkeypatch):
    from types import SimpleNamespace

    from hsviewer.core.analyses.sweep import run as sweep
    from hsviewer.core.model.memory import GB, sweep_batch
    from tests.test_core_memory import SMALL

    asked = []
    monkeypatch.setattr(sweep, "free_bytes", lambda device: asked.append(device) or int(2 * GB))
    handle = SimpleNamespace(device=torch.device("cuda", 1), facts=lambda: SMALL, dtype="float32")
    assert sweep.default_batch(handle, 8192) == sweep_batch(SMALL, 8192, "float32", int(2 * GB)) == 3
    assert asked == ["cuda:1"]


def test_a_model_whose_blocks_take_batch_x_heads_rows_sweeps_one_layer_a_pass(tmp_path, text):
    """Bloom's ALiBi bias has batch x heads rows, which the batch's cut cannot see: same result, one layer a pass."""
    import transformers

    from tests.tiny_models import make_tokenizer

    tokenizer = make_tokenizer()
    config = transformers.BloomConfig(
        vocab_size=len(tokenizer), hidden_size=32, n_layer=4, n_head=4, bos_token_id=1, eos_token_id=1, pad_token_id=1
    )
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    handle = load_model(str(tmp_path), device="cpu")
    single = layer_sweep(handle, text, Reduction(90.0), batch=1)
    batched = layer_sweep(handle, text, Reduction(90.0), batch=4)
    assert [r.components for r in batched.layers] == [r.components for r in single.layers]
    assert [r.loss for r in batched.layers] == pytest.approx([r.loss for r in single.layers], rel=1e-6)
