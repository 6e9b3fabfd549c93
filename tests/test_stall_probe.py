"""The benchmark's event-loop probe runs the real window's sweep and measures something."""

import math

from hsviewer.gui.stall_probe import longest_stall_during_sweep


def test_stall_probe_measures_a_sweep(tiny_model_dir, text, qapp):
    stall = longest_stall_during_sweep(str(tiny_model_dir), text)
    assert math.isfinite(stall) and stall > 0
