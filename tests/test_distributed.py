"""A corpus sweep across processes (torchrun, gloo on the CPU): rank 0 writes one result equal to
one process's (same texts, same order, same numbers) with world_size recorded, saved once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hsviewer.cli import main
from hsviewer.core.analyses.corpus.distributed import Ranks, launched_ranks, merge_shares, sweep_share
from hsviewer.core.analyses.corpus.run import iter_corpus_sweep
from hsviewer.core.analyses.corpus.texts import CorpusText
from hsviewer.core.errors import HsviewerError
from hsviewer.core.events import run_to_end
from hsviewer.core.library.store import Library

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "the museum of modern art in amsterdam is a building by van gogh .",
    "the city square is close to the south wing of the museum .",
    "it",  # one token: skipped, with a note, on whichever process has it
    "the architects designed a new entrance for the municipal museum in the century .",
    "a museum of contemporary design , known as the city wing .",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_same(a, b, where="result"):
    """Equal JSON values, floats to 1e-6 (relative)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-12), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_two_processes_write_what_one_writes(tiny_model_dir, tmp_path, monkeypatch):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(TEXTS) + "\n", encoding="utf-8")
    args = ["sweep", "--model", str(tiny_model_dir), "--texts", str(corpus), "--threshold", "90"]
    assert main([*args, "--controls", "random", "--out", str(tmp_path / "one.json")]) == 0
    one = json.loads((tmp_path / "one.json").read_text())

    data = tmp_path / "two-data"
    env = {
        **os.environ,
        "HSVIEWER_DATA_DIR": str(data),
        "HSVIEWER_CACHE_DIR": str(tmp_path / "two-cache"),
        "PYTHONPATH": str(ROOT),
    }
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    launcher += ["--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    two_out = tmp_path / "two.json"
    done = subprocess.run(
        [*launcher, "-m", "hsviewer", *args, "--controls", "random", "--out", str(two_out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    two = json.loads(two_out.read_text())
    assert (one.pop("world_size"), two.pop("world_size")) == (1, 2)
    names = ["corpus:1", "corpus:2", "corpus:4", "corpus:5"]
    assert [t["name"] for t in two["texts"]] == [t["name"] for t in one["texts"]] == names
    assert_same(two, one)
    assert done.stdout.count("Wrote ") == 1 and done.stderr.count("Saved to the runs library") == 1
    assert "corpus:3: skipped" in done.stdout  # the note of a text the second process skipped
    library = Library(data / "runs")
    runs = library.list().runs
    assert len(runs) == 1
    saved = library.load(runs[0])
    assert saved.provenance["world_size"] == 2 and saved.provenance["texts"] == TEXTS


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("world", [2, 3, 4])
def test_the_shares_are_the_texts_in_order_rank_0_never_empty(n, world):
    shares = [Ranks(rank, world, rank).share(n) for rank in range(world)]
    assert [i for share in shares for i in share] == list(range(n))
    assert len(shares[0]) > 0


def test_shares_merged_equal_one_sweep_of_every_text(tiny_handle):
    handle = tiny_handle("gpt2")
    texts = [CorpusText(name=f"t{i}", text=t) for i, t in enumerate(TEXTS)]
    one = run_to_end(iter_corpus_sweep(handle, texts, notes=["read note"]))

    def sweep(part):
        return iter_corpus_sweep(handle, part)

    ranks = [Ranks(rank, 6, rank) for rank in range(6)]  # a text each, and one process with none
    shares = [sweep_share(sweep, [texts[i] for i in r.share(len(texts))]) for r in ranks]
    assert shares[2].texts == [] and shares[2].notes and shares[5] is None  # "it" skipped; nothing left
    merged = merge_shares(shares, ["read note"], 6)
    assert merged.world_size == 6
    assert_same({**merged.to_dict(), "world_size": 1}, one.to_dict())


def test_no_text_swept_anywhere_is_the_one_process_message(tiny_handle):
    handle = tiny_handle("gpt2")
    shares = [sweep_share(lambda part: iter_corpus_sweep(handle, part), [CorpusText(name="a", text="it")]), None]
    with pytest.raises(HsviewerError, match=r"No text of the corpus could be swept \(1 skipped\): a: skipped"):
        merge_shares(shares, [], 2)


def test_the_launchers_environment_names_the_ranks():
    meet = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert launched_ranks({}) is None
    assert launched_ranks({"RANK": "0", "WORLD_SIZE": "1", **meet}) is None  # one process: nothing to split
    assert launched_ranks({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", **meet}) == Ranks(1, 2, 1)
    assert launched_ranks({"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1", **meet}) == Ranks(3, 4, 1)
    with pytest.raises(HsviewerError, match="MASTER_ADDR and MASTER_PORT not set"):
        launched_ranks({"RANK": "1", "WORLD_SIZE": "2"})
    with pytest.raises(HsviewerError, match="RANK 2 is not one of the 2 processes"):
        launched_ranks({"RANK": "2", "WORLD_SIZE": "2", **meet})
    with pytest.raises(HsviewerError, match="no whole numbers"):
        launched_ranks({"RANK": "one", "WORLD_SIZE": "2", **meet})
