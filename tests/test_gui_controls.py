"""The sweep tab's controls beyond the first token: exclude_first's count and exclude_massive's ratio
in spin boxes, their runs drawn and named, the choices remembered, a saved run's put back."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QDoubleSpinBox, QSpinBox

from tests.support import wait_job


def legend_names(plot) -> list[str]:
    return [label.text for _, label in plot.legend.items]


def test_the_spin_boxes_sit_beside_their_controls_with_defaults(window):
    inputs = window.sweep_tab.control_inputs
    assert isinstance(inputs.first_count, QSpinBox) and inputs.first_count.value() == 1
    assert isinstance(inputs.massive_ratio, QDoubleSpinBox) and inputs.massive_ratio.value() == 100.0
    assert inputs.first_count.minimum() == 1 and inputs.massive_ratio.minimum() > 1
    assert set(window.sweep_tab.control_boxes) == {"exclude_first", "exclude_massive", "random", "shuffled"}
    assert "median" in inputs.boxes["exclude_massive"].toolTip() and inputs.massive_ratio.toolTip()
    layout = inputs.layout()
    for name, spin in (("exclude_first", inputs.first_count), ("exclude_massive", inputs.massive_ratio)):
        box_row = layout.getItemPosition(layout.indexOf(inputs.boxes[name]))[0]
        assert layout.getItemPosition(layout.indexOf(spin))[:2] == (box_row, 1)  # beside its checkbox
    assert inputs.controls() == []


def test_the_control_runs_are_drawn_named_and_their_choices_remembered(qtbot, loaded, make_window, settings):
    tab = loaded.sweep_tab
    tab.form.threshold.setValue(90.0)
    tab.control_boxes["exclude_first"].setChecked(True)
    tab.control_boxes["exclude_massive"].setChecked(True)
    tab.control_inputs.first_count.setValue(4)
    tab.control_inputs.massive_ratio.setValue(2.5)
    assert tab.control_inputs.controls() == ["exclude_first:4", "exclude_massive:2.5"]
    with wait_job(qtbot, loaded, "sweep"):
        tab.run()
    qtbot.waitUntil(lambda: not loaded.jobs)
    result = tab.result
    assert list(result.controls) == ["exclude_first:4", "exclude_massive:2.5"]
    assert result.controls["exclude_first:4"].reduction.exclude_first == 4
    assert result.controls["exclude_massive:2.5"].reduction.exclude_massive == 2.5
    for label, run in result.controls.items():
        _, y = tab.curves[label]["components"].getData()
        np.testing.assert_array_equal(y, [layer.components for layer in run.layers])
    names = legend_names(tab.components)
    assert "exclude first 4 tokens" in names and "exclude massive tokens (2.5×)" in names
    pens = {tab.curves[label]["loss"].opts["pen"].color().name() for label in result.controls}
    assert len(pens) == 2  # each control its own colour
    loaded.close()  # saves the settings
    again = make_window(settings)
    inputs = again.sweep_tab.control_inputs
    assert inputs.first_count.value() == 4 and inputs.massive_ratio.value() == 2.5
    assert inputs.controls() == ["exclude_first:4", "exclude_massive:2.5"]


def test_a_saved_run_puts_its_count_and_ratio_back(qtbot, loaded):
    tab, runs = loaded.sweep_tab, loaded.runs_tab
    tab.form.threshold.setValue(90.0)
    tab.control_boxes["exclude_first"].setChecked(True)
    tab.control_inputs.first_count.setValue(3)
    with wait_job(qtbot, loaded, "sweep"):
        tab.run()
    qtbot.waitUntil(lambda: not loaded.jobs)
    tab.control_boxes["exclude_first"].setChecked(False)
    tab.control_boxes["exclude_massive"].setChecked(True)
    tab.control_inputs.first_count.setValue(1)
    runs.refresh()
    runs.open(runs.infos()[0])
    assert tab.control_inputs.controls() == ["exclude_first:3"]
    assert list(tab.curves) == ["", "exclude_first:3"]  # redrawn from the saved run
