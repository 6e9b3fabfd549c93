"""The spec dataclasses: each checks itself once when built, and its settings are exactly the dict the
runs library recorded before the specs existed (literal dicts below, in that format), rebuilt by from_settings."""

from __future__ import annotations

import dataclasses

import pytest

from hsviewer.core.analyses.intervene.spec import InterveneSpec
from hsviewer.core.analyses.reduce.spec import ReduceSpec
from hsviewer.core.analyses.sweep.spec import SweepSpec
from hsviewer.core.errors import HsviewerError
from hsviewer.core.linalg.reduction import Reduction
from hsviewer.core.model.load_spec import LoadSpec

REDUCTION = {  # asdict(Reduction(threshold=90.0, centering="column", exclude_first=4)), as saved before
    "threshold": 90.0,
    "fixed_components": None,
    "centering": "column",
    "exclude_first": 4,
    "basis": "top",
    "seed": 0,
    "exclude_massive": None,
}


def cli_sweep() -> SweepSpec:
    """As `hsviewer sweep --threshold 90 --centering column --exclude-first 4 --grid 80,99.5 --controls ...`."""
    return SweepSpec.parse(
        reduction=Reduction(threshold=90.0, centering="column", exclude_first=4),
        grid="80, 99.5%",
        controls=["random", "exclude_massive:100"],
    )


def test_a_sweeps_settings_are_the_dict_the_library_kept():
    assert cli_sweep().settings() == {
        "reduction": REDUCTION,
        "grid": ["80%", "99.5%"],
        "controls": ["random", "exclude_massive:100"],
        "method": "prefix",
    }


def test_a_corpus_sweeps_settings_add_the_source():
    spec = SweepSpec(reduction=Reduction(fixed_components=3), grid=[Reduction(fixed_components=5)], method="hooks")
    assert spec.corpus_settings("bundled") == {
        "reduction": {**REDUCTION, "threshold": 95.0, "fixed_components": 3, "centering": "double", "exclude_first": 0},
        "grid": ["k = 5"],
        "controls": [],
        "method": "hooks",
        "source": "bundled",
    }


def test_a_reduce_runs_and_an_interventions_settings_are_the_dicts_the_library_kept():
    reduce = ReduceSpec(layer=2, reduction=Reduction(threshold=90.0, centering="column", exclude_first=4))
    assert reduce.settings() == {"layer": 2, "reduction": REDUCTION}
    assert InterveneSpec(layers="0,2", ratio=50.0, control="random", seed=3).settings() == {
        "layers": "0,2",
        "ratio": 50.0,
        "value": "mean",
        "control": "random",
        "seed": 3,
    }
    assert InterveneSpec(layers=[1, 3]).settings()["layers"] == [1, 3]  # a list, as the library kept it


def test_saved_settings_rebuild_an_equal_spec():
    sweep = cli_sweep()
    assert SweepSpec.from_settings(sweep.settings()) == sweep
    assert SweepSpec.from_settings(sweep.corpus_settings("x")) == sweep
    fixed = SweepSpec.parse(reduction=Reduction(fixed_components=3, exclude_first=2), grid="2,5")
    assert SweepSpec.from_settings(fixed.settings()) == fixed
    reduce = ReduceSpec(layer=1, reduction=Reduction(exclude_massive=50.0, basis="random", seed=7))
    assert ReduceSpec.from_settings(reduce.settings()) == reduce
    intervene = InterveneSpec(layers=[0, 2], ratio=20.0, value="zero")
    assert InterveneSpec.from_settings(intervene.settings()) == intervene


def test_a_runs_settings_as_this_version_saved_them_rebuild():
    """A literal of a saved sweep's settings (the app's: its grid carries the centring only) gives its spec
    back, and that spec's settings are the same dict."""
    saved = {
        "reduction": {**REDUCTION, "exclude_first": 1, "exclude_massive": 100.0},
        "grid": ["80%", "k = 4"],
        "controls": ["exclude_first:4"],
        "method": "prefix",
    }
    spec = SweepSpec.from_settings(saved)
    assert spec.reduction == Reduction(threshold=90.0, centering="column", exclude_first=1, exclude_massive=100.0)
    assert [(g.threshold, g.fixed_components) for g in spec.grid] == [(80.0, None), (90.0, 4)]
    assert spec.controls == ("exclude_first:4",) and spec.settings() == saved
    old_reduce = {"layer": 0, "reduction": {**REDUCTION, "exclude_first": True}}  # before counts: true for 1
    assert ReduceSpec.from_settings(old_reduce).reduction.exclude_first == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "  "}, "No model given."),
        ({"dtype": "float8"}, "Unknown dtype 'float8'"),
        ({"device": "meta"}, "Unknown device 'meta'"),
        ({"stream": "sometimes"}, "Stream must be one of auto, always, never"),
        ({"stream": "always", "device_map": "auto"}, "choose one"),
        ({"threads": -1}, "Threads must be a whole number of at least 0"),
        ({"memory_budget": 0}, "at least 1"),
    ],
)
def test_a_load_spec_refuses_a_bad_choice_when_built(kwargs, message):
    with pytest.raises(HsviewerError, match=message):
        LoadSpec(**kwargs)


def test_a_load_spec_is_one_spelling_and_frozen():
    spec = LoadSpec(source=" default ", device=" cuda:1 ")
    assert (spec.source, spec.device, spec.thread_count) == ("default", "cuda:1", None)
    assert LoadSpec(threads=3).thread_count == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.dtype = "float16"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SweepSpec(method="fast"), "Method must be one of prefix, hooks"),
        (lambda: SweepSpec(controls=["random", "random"]), "asked for twice"),
        (lambda: SweepSpec(controls=["exclude_first:0"]), "at least 1"),
        (lambda: SweepSpec(grid=[80.0]), "grid holds Reductions"),
        (lambda: SweepSpec(batch=0), "batch must be a whole number"),
        (lambda: SweepSpec.parse(grid="80,lots"), "Grid values must be numbers"),
        (lambda: ReduceSpec(layer=1.5), "Layer must be a whole number"),
        (lambda: InterveneSpec(layers="all", ratio=0.5), "ratio must be a number of at least 1"),
        (lambda: InterveneSpec(layers="all", value="max"), "value must be one of mean, zero"),
        (lambda: InterveneSpec(layers="3-1"), "runs backwards"),
    ],
)
def test_an_analysis_spec_refuses_a_bad_choice_when_built(build, message):
    with pytest.raises(HsviewerError, match=message):
        build()


def test_a_sweep_spec_holds_tuples_and_is_frozen():
    spec = SweepSpec(grid=[Reduction(80.0)], controls=["random"])
    assert spec.grid == (Reduction(80.0),) and spec.controls == ("random",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.method = "hooks"  # type: ignore[misc]
