"""hsviewer._frozen: a windowed build's missing streams become the user log file."""

from __future__ import annotations

import sys

import platformdirs

from hsviewer._frozen import LOG_NAME, fix_std_streams


def test_missing_streams_go_to_the_log(monkeypatch, tmp_path):
    monkeypatch.setattr(platformdirs, "user_log_dir", lambda *args, **kwargs: str(tmp_path / "log"))
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", None)
    fix_std_streams()
    print("to stdout")
    print("to stderr", file=sys.stderr)
    sys.stdout.close()
    assert (tmp_path / "log" / LOG_NAME).read_text(encoding="utf-8") == "to stdout\nto stderr\n"


def test_real_streams_are_left_alone():
    out, err = sys.stdout, sys.stderr
    fix_std_streams()
    assert (sys.stdout, sys.stderr) == (out, err)
