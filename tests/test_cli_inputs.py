"""Bad input, third round, where the user meets it: the command line. Each ends in one clear line
(exit 2) or a warning and a result, and before any model is loaded when it can be."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import warnings

import pytest

import hsviewer.core
from hsviewer.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def no_loading(monkeypatch):
    """Any model load fails the test: the command must stop before it."""
    monkeypatch.setattr(hsviewer.core, "load_model", lambda *a, **k: pytest.fail(f"a model was loaded: {a}"))


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1].startswith("hsviewer: error: "), err
    return lines[-1]


def test_a_lone_surrogate_in_a_jsonl_corpus_is_replaced_with_a_warning(tiny_model_dir, tmp_path, capsys):
    corpus = tmp_path / "t.jsonl"
    corpus.write_text('{"text": "the museum \\ud800 of modern art"}\n{"text": "van gogh designed the building"}\n')
    out = tmp_path / "c.json"
    assert main(["sweep", "--model", str(tiny_model_dir), "--texts", str(corpus), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: t:1 is not valid UTF-8: 1 lone surrogate(s) replaced with U+FFFD." in err
    data = json.loads(out.read_text())
    assert len(data["texts"]) == 2 and any("U+FFFD" in note for note in data["notes"])


@pytest.mark.parametrize("plan", [[], ["--plan"]], ids=["sweep", "plan"])
def test_a_deeply_nested_jsonl_line_is_one_message_before_loading(plan, no_loading, tmp_path, capsys):
    corpus = tmp_path / "t.jsonl"
    corpus.write_text('{"text": "fine"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    args = ["sweep", "--texts", str(corpus), "--out", str(tmp_path / "c.json"), *plan]
    assert main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "Line 2 of" in line and "nested too deeply" in line


def test_a_memory_budget_of_401_digits_is_one_line(no_loading, tmp_path, capsys):
    args = ["reduce", "--layer", "0", "--out", str(tmp_path / "r.json"), "--memory-budget", "1" * 401]
    assert main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "more than any machine has" in line and len(line) < 200


def test_a_plan_that_does_not_fit_exits_2_and_names_a_small_budget_in_mb(tiny_model_dir, tmp_path, capsys):
    args = ["sweep", "--model", str(tiny_model_dir), "--text", "a b c", "--out", str(tmp_path / "s.json")]
    assert main([*args, "--plan", "--memory-budget", "1MB"]) == 2
    said = capsys.readouterr().out
    assert "of 1.0 MB budget" in said and "Not enough memory" in said and "0.00 GB" not in said
    assert main([*args, "--plan"]) == 0  # what fits still exits 0


def test_an_out_name_of_250_bytes_is_written(tiny_model_dir, text, tmp_path, capsys):
    out = tmp_path / ("é" * 122 + ".json")  # 244 + 5 bytes: legal, but its temporary sibling was not
    csv = tmp_path / ("x" * 251 + ".csv")
    args = ["sweep", "--model", str(tiny_model_dir), "--text", text, "--out", str(out), "--csv", str(csv)]
    assert main(args) == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["n_layers"] == 3 and csv.read_text().startswith("run,layer")
    assert sorted(os.listdir(tmp_path)) == sorted([out.name, csv.name])


def test_an_out_name_longer_than_255_bytes_is_refused_before_loading(no_loading, tmp_path, capsys):
    assert main(["sweep", "--text", "a b", "--out", str(tmp_path / ("x" * 256 + ".json"))]) == 2
    assert "File name too long" in one_error_line(capsys.readouterr().err)


def test_one_text_swept_is_one_text(tiny_model_dir, tmp_path, capsys):
    corpus = tmp_path / "t.txt"
    corpus.write_text("the museum of modern art in amsterdam")
    assert (
        main(["sweep", "--model", str(tiny_model_dir), "--texts", str(corpus), "--out", str(tmp_path / "c.json")]) == 0
    )
    out = capsys.readouterr().out
    assert ": 1 text swept," in out and "1 texts" not in out


class _Code:
    """What a malicious checkpoint pickles: unpickling it would call os.system."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_checkpoint_is_refused_in_one_whole_sentence(tiny_model_dir, tmp_path, capfd):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    with open(folder / "pytorch_model.bin", "wb") as f:
        pickle.dump({"model.embed_tokens.weight": _Code()}, f, protocol=4)  # not torch's own protocol: a warning
    with warnings.catch_warnings(record=True) as caught:  # pytest records warnings: none may reach stderr
        warnings.simplefilter("always")
        assert main(["reduce", "--model", str(folder), "--layer", "0", "--out", str(tmp_path / "r.json")]) == 2
    assert not [w for w in caught if issubclass(w.category, UserWarning)], [str(w.message) for w in caught]
    out, err = capfd.readouterr()
    line = one_error_line(err)
    assert "pwned" not in out + err
    assert "pickle" in line and "could run code" in line and line.endswith(".")


def test_a_logged_warning_is_a_warning_line(tiny_model_dir, text, tmp_path, monkeypatch, capsys):
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder would be")
    monkeypatch.setenv("HSVIEWER_CACHE_DIR", str(not_a_folder))  # file hashes cannot be kept there
    assert (
        main(
            [
                "reduce",
                "--model",
                str(tiny_model_dir),
                "--text",
                text,
                "--layer",
                "0",
                "--out",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err.splitlines()
    kept = [line for line in err if "Could not keep file hashes" in line]
    assert kept and all(line.startswith("warning: Could not keep file hashes in ") for line in kept), err
