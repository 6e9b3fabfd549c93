"""Results to and from JSON by their fields (core.fields): round trips of every result type, files
saved before a field or before the schema key, and the clear errors for a newer or incomplete file."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from hsviewer.core import fields
from hsviewer.core.analyses.corpus.results import CorpusResult
from hsviewer.core.analyses.geometry.results import GeometryResult, LayerGeometry, TextGeometry
from hsviewer.core.analyses.intervene.results import InterventionResult, LayerIntervention
from hsviewer.core.analyses.reduce.results import HiddenReduction
from hsviewer.core.analyses.sweep.results import LayerResult, SweepResult
from hsviewer.core.errors import HsviewerError
from hsviewer.core.library.store import RunFileError, RunInfo, read_run
from hsviewer.core.linalg.measures import MassiveActivation, SpectrumMeasures
from hsviewer.core.linalg.reduction import Reduction

BEFORE = Path(__file__).parent / "data" / "runs_before_schema"  # saved by the version before schemas


@dataclass(kw_only=True)
class Leaf:
    x: float
    label: str | None = field(default=None, metadata={fields.OMIT_NONE: True})


@dataclass(kw_only=True)
class Tree:
    SCHEMA: ClassVar[int] = 2
    name: str
    leaf: Leaf
    leaves: list[Leaf] = field(default_factory=list)
    pair: tuple[float, float] | None = None
    table: dict[str, Leaf] = field(default_factory=dict)
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    doubled: int = field(default=0, metadata={fields.ENCODE: lambda n: 2 * n, fields.DECODE: lambda n: n // 2})


def through_json(data):
    return json.loads(json.dumps(data, allow_nan=True))


def test_a_nested_dataclass_goes_to_known_json_and_back():
    tree = Tree(
        name="t", leaf=Leaf(x=1.5), leaves=[Leaf(x=2.0, label="b")], pair=(1.0, 2.0),
        table={"k": Leaf(x=3.0)}, values=np.array([0.5, -1.0]), doubled=21,
    )  # fmt: skip
    data = fields.to_dict(tree)
    assert data == {
        "schema": 2, "name": "t", "leaf": {"x": 1.5}, "leaves": [{"x": 2.0, "label": "b"}], "pair": [1.0, 2.0],
        "table": {"k": {"x": 3.0}}, "values": [0.5, -1.0], "doubled": 42,
    }  # fmt: skip
    back = fields.from_dict(Tree, through_json(data))
    assert back.pair == (1.0, 2.0) and back.leaves == tree.leaves and back.table == tree.table
    assert isinstance(back.values, np.ndarray) and np.array_equal(back.values, tree.values)
    assert back.doubled == 21 and back.leaf == Leaf(x=1.5)


def test_unknown_keys_are_ignored_and_absent_ones_take_their_default():
    back = fields.from_dict(Tree, {"name": "t", "leaf": {"x": 1, "later": True}, "from_the_future": [1]})
    assert back.leaf == Leaf(x=1.0) and isinstance(back.leaf.x, float)
    assert back.leaves == [] and back.pair is None and back.doubled == 0


def test_a_missing_required_field_is_an_error_naming_it():
    with pytest.raises(HsviewerError, match="'leaf'"):
        fields.from_dict(Tree, {"name": "t"})
    with pytest.raises(HsviewerError, match="'x'"):
        fields.from_dict(Tree, {"name": "t", "leaf": {}})


def test_a_newer_schema_is_refused_and_none_reads_as_version_one():
    with pytest.raises(HsviewerError, match="written by a newer hsviewer"):
        fields.from_dict(Tree, {"schema": 3, "name": "t", "leaf": {"x": 1}})
    assert fields.check_schema(Tree, {}) == 1
    assert fields.from_dict(Tree, {"schema": 2, "name": "t", "leaf": {"x": 1}}).name == "t"
    with pytest.raises(HsviewerError, match="schema version"):
        fields.check_schema(Tree, {"schema": "one"})


def measures(ratio: float, linearity: float | None) -> SpectrumMeasures:
    return SpectrumMeasures(
        participation_ratio=2.5, effective_rank=3.25, anisotropy=0.4, twonn_dimension=None, prompt_entropy=1.0,
        prompt_entropy_normalised=0.5, linearity=linearity,
        massive_activation=MassiveActivation(ratio=ratio, token=0, dimension=3, value=-7.0, token_text="the"),
    )  # fmt: skip


def layer(number: int, ratio: float = 12.0, **kw) -> LayerResult:
    return LayerResult(
        layer=number, components=3 + number, variance_kept=91.5, hidden_diff_norm=0.25, logit_diff_norm=1.5,
        loss=4.0 + number, kl_divergence=0.125, token_diff_norms=[0.0, 0.5], measures=measures(ratio, None), **kw,
    )  # fmt: skip


def sweep(**kw) -> SweepResult:
    grid = [Reduction(threshold=80.0), Reduction(fixed_components=2)]
    layers = [layer(0, grid_components=[2, 2], grid_loss=[4.5, 4.25]), layer(1, math.inf, grid_components=[1, 2])]
    layers[1].grid_loss = [5.0, 5.5]
    return SweepResult(
        model="m", tokens=["a", "b", "c"], n_layers=2, reduction=Reduction(threshold=90.0), clean_loss=3.5,
        layers=layers, grid=grid, warnings=["w"], **kw,
    )  # fmt: skip


def test_a_sweep_with_grid_and_controls_round_trips_through_json():
    control = SweepResult(
        model="m", tokens=["a", "b", "c"], n_layers=2, reduction=Reduction(threshold=90.0, exclude_first=2),
        clean_loss=3.75, layers=[layer(0, excluded_tokens=[2])],
    )  # fmt: skip
    result = sweep(controls={"exclude_first:2": control})
    data = through_json(result.to_dict())
    assert data["schema"] == 1 and data["layers"][1]["massive_activation"]["ratio"] is None  # inf: null
    back = SweepResult.from_dict(data)
    assert back == result  # inf ratio read back as inf, the grid's settings and losses in place


def test_corpus_reduce_intervene_geometry_and_run_info_round_trip_through_json():
    corpus = CorpusResult(
        model="m", n_layers=2, hidden_size=8, reduction=Reduction(threshold=90.0), source="s",
        names=["one", "two"], texts=[sweep(), sweep()], notes=["n"], world_size=2,
    )  # fmt: skip
    assert CorpusResult.from_dict(through_json(corpus.to_dict())) == corpus
    intervention = InterventionResult(
        model="m", tokens=["a"], n_layers=2, ratio=3.0, value="mean", clean_loss=1.0, control="random", seed=4,
        layers=[LayerIntervention(layer=0, entries=2, positions=[[0, 1], [0, 5]], median=0.5, largest_ratio=None,
                                  loss=1.5, loss_change=0.5, kl_divergence=0.25, hidden_diff_norm=2.0,
                                  logit_diff_norm=3.0, random_loss=1.25)],
    )  # fmt: skip
    assert InterventionResult.from_dict(through_json(intervention.to_dict())) == intervention
    geometry = GeometryResult(
        model="m", n_layers=2, hidden_size=8, source="s", seed=3,
        texts=[TextGeometry(name="t", tokens=5, layers=[LayerGeometry(layer=0, anisotropy=0.5, massive_ratio=9.0)])],
    )  # fmt: skip
    assert GeometryResult.from_dict(through_json(geometry.to_dict())) == geometry
    info = RunInfo(id="i", name="n", kind="sweep", model="m", setting="90%", created="2026", path=Path("/x/i.json"))
    assert info.to_dict()["path"] == "/x/i.json"


def test_a_reduction_round_trips_with_its_matrices():
    rng = np.random.default_rng(0)
    arrays = {name: rng.standard_normal(shape) for name, shape in
              [("original", (3, 4)), ("reconstruction", (3, 4)), ("u", (3, 3)), ("s", (3,)), ("vh", (3, 4)),
               ("diff_norms", (2,))]}  # fmt: skip
    result = HiddenReduction(
        model="m", tokens=["a", "b", "c"], layer=1, n_layers=2, reduction=Reduction(fixed_components=2),
        components=2, variance_kept=80.0, clean_loss=1.0, loss=1.5, logit_diff_norm=0.5, kl_divergence=0.25,
        correlation=0.9, rank_original=3, rank_reconstruction=2, measures=measures(5.0, 0.75), **arrays,
    )  # fmt: skip
    data = through_json(result.to_dict())
    assert data["singular_values"] == arrays["s"].tolist()
    back = HiddenReduction.from_dict(data, result.arrays())
    assert back.to_dict() == result.to_dict() and back.measures == result.measures
    assert all(np.array_equal(getattr(back, name), value) for name, value in arrays.items())


def test_a_newer_result_schema_is_refused_with_the_message():
    data = sweep().to_dict() | {"schema": 2}
    with pytest.raises(HsviewerError, match="newer hsviewer"):
        SweepResult.from_dict(data)
    with pytest.raises(HsviewerError, match="newer hsviewer"):
        InterventionResult.from_dict({"schema": 9, "model": "m"})


def test_a_layer_saved_before_the_measures_and_fields_reads_them_as_absent():
    old = {"layer": 0, "components": 2, "variance_kept": 90.0, "hidden_diff_norm": 0.1, "logit_diff_norm": 0.2,
           "loss": 1.0, "kl_divergence": 0.0, "token_diff_norms": [0.1]}  # fmt: skip
    back = LayerResult.from_dict(old, [], [])
    assert back.measures is None and back.excluded_tokens is None and back.grid_loss == []
    with pytest.raises(HsviewerError, match="'components'"):
        LayerResult.from_dict({k: v for k, v in old.items() if k != "components"}, [], [])


@pytest.mark.parametrize("kind", ["sweep", "intervene", "reduce"])
def test_a_run_file_saved_before_schemas_opens_with_its_numbers(tmp_path, kind):
    for path in BEFORE.glob(f"{kind}.*"):
        shutil.copy(path, tmp_path / path.name)
    saved = json.loads((tmp_path / f"{kind}.json").read_text())["result"]
    assert "schema" not in saved
    result = read_run(tmp_path / f"{kind}.json").result()
    assert result.clean_loss == saved["clean_loss"] and result.tokens == saved["tokens"]
    if kind != "reduce":
        assert [r.loss for r in result.layers] == [r["loss"] for r in saved["layers"]]
    assert without_schema(result.to_dict()) == saved  # the same JSON, the schema keys aside


def without_schema(data):
    """The JSON less every "schema" key, nested ones (a sweep's controls) included."""
    if isinstance(data, dict):
        return {k: without_schema(v) for k, v in data.items() if k != "schema"}
    return [without_schema(v) for v in data] if isinstance(data, list) else data


def test_a_run_file_of_a_newer_schema_is_refused_clearly(tmp_path):
    envelope = json.loads((BEFORE / "intervene.json").read_text())
    envelope["result"]["schema"] = 7
    (tmp_path / "intervene.json").write_text(json.dumps(envelope))
    with pytest.raises(RunFileError, match="written by a newer hsviewer"):
        read_run(tmp_path / "intervene.json").result()
