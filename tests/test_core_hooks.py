"""Block outputs (tensor or tuple) and the context managers that watch or change blocks."""

from __future__ import annotations

import pytest
import torch

from hsviewer.core.model.anatomy import block_hidden, replace_hidden
from hsviewer.core.passes.hooks import capture_outputs, replace_block_output, replay_prefix

IDS = torch.tensor([[2, 5, 7, 3, 11, 4, 9, 6]])


class Boom(Exception):
    pass


def logits(handle, ids=IDS):
    with torch.no_grad():
        return handle.model(ids, use_cache=False).logits


def hook_state(handle):
    """The hooks on each block (transformers 5 installs its own output-capturing hooks)."""
    return [(list(b._forward_hooks), list(b._forward_pre_hooks)) for b in handle.blocks]


def assert_clean(handle, baseline):
    """No hooks or stubs of ours left on any block: the hooks are those the model had before (`baseline`)."""
    assert hook_state(handle) == baseline
    for block in handle.blocks:
        assert "forward" not in block.__dict__


@pytest.fixture(scope="module", params=["llama", "gpt_neo"], ids=["tensor-blocks", "tuple-blocks"])
def warmed(request, tiny_handle):
    """A tiny model after one forward that lets transformers install whatever hooks it installs."""
    handle = tiny_handle(request.param)
    with torch.no_grad():
        handle.model(IDS, output_hidden_states=True, use_cache=False)
    for block in handle.blocks:
        assert "forward" not in block.__dict__
    return handle


@pytest.fixture(scope="module")
def baseline(warmed):
    """The hooks on each block before any test here ran."""
    return hook_state(warmed)


@pytest.fixture(scope="module")
def handle(warmed, baseline):
    """The warmed model; asking for it takes the baseline first, so no test can change it unseen."""
    return warmed


@pytest.fixture(scope="module")
def clean_logits(handle):
    return logits(handle)


# --- block outputs ------------------------------------------------------------------------------


def test_block_hidden_and_replace_hidden_with_a_bare_tensor():
    hidden = torch.randn(2, 5, 4)  # batch of two: unpacking it as a tuple would take row 0
    assert block_hidden(hidden) is hidden
    new = torch.zeros(2, 5, 4)
    assert replace_hidden(hidden, new) is new


def test_block_hidden_and_replace_hidden_with_a_tuple():
    hidden, extra, more = torch.randn(1, 5, 4), torch.randn(1, 2, 5, 5), None
    output = (hidden, extra, more)
    assert block_hidden(output) is hidden
    new = torch.zeros(1, 5, 4)
    replaced = replace_hidden(output, new)
    assert isinstance(replaced, tuple) and len(replaced) == 3
    assert replaced[0] is new and replaced[1] is extra and replaced[2] is None
    single = replace_hidden((hidden,), new)
    assert isinstance(single, tuple) and len(single) == 1 and single[0] is new


def test_block_output_kinds(tiny_handle, handle):
    with capture_outputs(handle.blocks, raw=True) as raw:
        logits(handle)
    kind = tuple if handle is tiny_handle("gpt_neo") else torch.Tensor
    assert all(isinstance(raw[i], kind) for i in range(handle.n_layers))
    assert block_hidden(raw[0]).shape == (1, IDS.shape[1], handle.model.config.hidden_size)


# --- capture_outputs ----------------------------------------------------------------------------


def test_capture_outputs_equals_hidden_states(handle, clean_logits, baseline):
    with torch.no_grad(), capture_outputs(handle.blocks) as outputs:
        out = handle.model(IDS, output_hidden_states=True, use_cache=False)
    assert sorted(outputs) == list(range(handle.n_layers))
    for i in range(handle.n_layers - 1):  # the last hidden_states entry is after the final norm
        torch.testing.assert_close(outputs[i], out.hidden_states[i + 1], rtol=0, atol=0)
    assert not any(t.requires_grad for t in outputs.values())
    torch.testing.assert_close(out.logits, clean_logits, rtol=0, atol=0)
    assert_clean(handle, baseline)


@pytest.mark.parametrize("raw", [False, True])
def test_captured_hidden_states_share_one_allocation(handle, raw):
    """Kept apart from the pass's temporaries (for the heap's sake), in block order."""
    with torch.no_grad(), capture_outputs(handle.blocks, raw=raw) as outputs:
        handle.model(IDS, use_cache=False)
    hidden = [block_hidden(outputs[i]) for i in range(handle.n_layers)]
    assert len({h.untyped_storage().data_ptr() for h in hidden}) == 1
    assert [h.data_ptr() for h in hidden] == sorted(h.data_ptr() for h in hidden)
    assert len({h.data_ptr() for h in hidden}) == handle.n_layers


def test_capture_outputs_removes_hooks_on_error(handle, clean_logits, baseline):
    with pytest.raises(Boom), capture_outputs(handle.blocks) as outputs:
        assert all(len(a[0]) == len(b[0]) + 1 for a, b in zip(hook_state(handle), baseline, strict=True))
        raise Boom
    assert outputs == {}
    assert_clean(handle, baseline)
    torch.testing.assert_close(logits(handle), clean_logits, rtol=0, atol=0)


# --- replace_block_output -----------------------------------------------------------------------


def test_replace_block_output_replaces_the_block_output(handle, clean_logits, baseline):
    layer = handle.n_layers - 1 if handle.n_layers > 1 else 0
    seen = []

    def reducer(row):
        seen.append(row.clone())
        return row * 2

    with capture_outputs(handle.blocks) as clean:
        logits(handle)
    with replace_block_output(handle.blocks[layer], reducer), capture_outputs(handle.blocks) as changed:
        changed_logits = logits(handle)
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], clean[layer][0], rtol=0, atol=0)
    torch.testing.assert_close(changed[layer], 2 * clean[layer], rtol=0, atol=0)
    for i in range(layer):
        torch.testing.assert_close(changed[i], clean[i], rtol=0, atol=0)
    assert not torch.allclose(changed_logits, clean_logits)
    assert_clean(handle, baseline)
    torch.testing.assert_close(logits(handle), clean_logits, rtol=0, atol=0)


def test_replace_block_output_identity_changes_nothing(handle, clean_logits, baseline):
    with replace_block_output(handle.blocks[0], lambda row: row):
        torch.testing.assert_close(logits(handle), clean_logits, rtol=0, atol=0)
    assert_clean(handle, baseline)


def test_replace_block_output_each_batch_row(handle, baseline):
    batch = torch.cat([IDS, IDS.flip(1)])
    rows = []

    def reducer(row):
        rows.append(row.shape)
        return row

    with replace_block_output(handle.blocks[0], reducer):
        logits(handle, batch)
    assert rows == [torch.Size([IDS.shape[1], handle.model.config.hidden_size])] * 2
    assert_clean(handle, baseline)


def test_replace_block_output_removes_its_hook_on_error(handle, clean_logits, baseline):
    with pytest.raises(Boom), replace_block_output(handle.blocks[0], lambda row: row * 0):
        assert len(handle.blocks[0]._forward_hooks) == len(baseline[0][0]) + 1
        raise Boom
    assert_clean(handle, baseline)
    torch.testing.assert_close(logits(handle), clean_logits, rtol=0, atol=0)


def test_replace_block_output_removes_its_hook_when_the_reducer_fails(handle, clean_logits, baseline):
    def reducer(row):
        raise Boom

    with pytest.raises(Boom), replace_block_output(handle.blocks[0], reducer):
        logits(handle)
    assert_clean(handle, baseline)
    torch.testing.assert_close(logits(handle), clean_logits, rtol=0, atol=0)


# --- replay_prefix ------------------------------------------------------------------------------


def test_replay_prefix_with_the_clean_hidden_gives_the_clean_output(handle, clean_logits, baseline):
    with torch.no_grad(), capture_outputs(handle.blocks, raw=True) as raw:
        handle.model(IDS, use_cache=False)
    for layer in range(handle.n_layers):
        with torch.no_grad(), replay_prefix(handle.blocks, raw, layer, block_hidden(raw[layer])):
            for block in handle.blocks[: layer + 1]:
                assert "forward" in block.__dict__
            for block in handle.blocks[layer + 1 :]:
                assert "forward" not in block.__dict__
            replayed = logits(handle)
        torch.testing.assert_close(replayed, clean_logits, rtol=1e-6, atol=1e-6)
        assert_clean(handle, baseline)


def test_replay_prefix_skips_the_blocks_before_the_layer(handle, baseline):
    with torch.no_grad(), capture_outputs(handle.blocks, raw=True) as raw:
        handle.model(IDS, use_cache=False)
    layer = handle.n_layers - 1
    ran = []
    originals = [type(b).forward for b in handle.blocks]

    def counting(i):
        def forward(self, *args, **kwargs):
            ran.append(i)
            return originals[i](self, *args, **kwargs)

        return forward

    # Only blocks after `layer` may compute anything (here: none after the last block).
    patches = [pytest.MonkeyPatch() for _ in handle.blocks]
    try:
        for i, (patch, block) in enumerate(zip(patches, handle.blocks, strict=True)):
            patch.setattr(block, "forward", counting(i).__get__(block))
        with torch.no_grad(), replay_prefix(handle.blocks, raw, layer, block_hidden(raw[layer])):
            logits(handle)
        assert ran == []
        # restored to what was there before (the counting wrappers), not to the class method
        logits(handle)
        assert ran == list(range(handle.n_layers))
    finally:
        for patch in patches:
            patch.undo()
    assert_clean(handle, baseline)


def test_replay_prefix_uses_the_given_hidden(handle, clean_logits, baseline):
    with torch.no_grad(), capture_outputs(handle.blocks, raw=True) as raw:
        handle.model(IDS, use_cache=False)
    layer = 0
    doubled = 2 * block_hidden(raw[layer])
    with replace_block_output(handle.blocks[layer], lambda row: row * 2):
        expected = logits(handle)
    with torch.no_grad(), replay_prefix(handle.blocks, raw, layer, doubled):
        got = logits(handle)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, clean_logits)
    assert_clean(handle, baseline)


def test_replay_prefix_restores_on_error(handle, clean_logits, baseline):
    with torch.no_grad(), capture_outputs(handle.blocks, raw=True) as raw:
        handle.model(IDS, use_cache=False)
    layer = handle.n_layers - 1
    with pytest.raises(Boom), replay_prefix(handle.blocks, raw, layer, torch.zeros_like(block_hidden(raw[layer]))):
        raise Boom
    assert_clean(handle, baseline)
    torch.testing.assert_close(logits(handle), clean_logits, rtol=0, atol=0)


def test_replay_prefix_restores_when_an_output_is_missing(handle, clean_logits, baseline):
    with torch.no_grad(), capture_outputs(handle.blocks, raw=True) as raw:
        handle.model(IDS, use_cache=False)
    partial = {0: raw[0]}  # block 1's output was never recorded
    layer = 1 if handle.n_layers > 2 else handle.n_layers - 1
    with pytest.raises(KeyError), replay_prefix(handle.blocks, partial, layer + 1, block_hidden(raw[0])):
        pass
    assert_clean(handle, baseline)
    torch.testing.assert_close(logits(handle), clean_logits, rtol=0, atol=0)
