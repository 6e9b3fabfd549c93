"""The batched sweep (several layers' tails in one pass, as on CUDA) equals the one-layer-at-a-time sweep."""

import pytest

from hsviewer.core import Reduction, iter_sweep, layer_sweep, load_model
from hsviewer.core.sweep import LayerDone
from tests.tiny_models import ARCHITECTURES, make_tiny_model


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_batched_tails_equal_single_tails(arch, tmp_path, text):
    handle = load_model(str(make_tiny_model(tmp_path / arch, arch, n_layers=5)), device="cpu")
    single = layer_sweep(handle, text, Reduction(90.0), batch=1)
    batched = layer_sweep(handle, text, Reduction(90.0), batch=3)
    assert [r.components for r in batched.layers] == [r.components for r in single.layers]
    for a, b in zip(single.layers, batched.layers, strict=True):
        assert b.loss == pytest.approx(a.loss, rel=1e-5)
        assert b.logit_diff_norm == pytest.approx(a.logit_diff_norm, rel=1e-4, abs=1e-5)
        assert b.kl_divergence == pytest.approx(a.kl_divergence, rel=1e-4, abs=1e-7)
    # Each layer's reduction changes the loss differently: the batch rows are not all one layer.
    assert len({round(r.loss, 6) for r in batched.layers}) > 1


def test_batched_sweep_still_reports_every_layer(tiny_model, text):
    events = iter_sweep(tiny_model, text, batch=2)
    seen = [(e.done, e.total, e.result.layer) for e in events if isinstance(e, LayerDone)]
    assert seen == [(1, 3, 0), (2, 3, 1), (3, 3, 2)]
