"""One translation of exceptions into the user's words, shared by the command line and the app's jobs."""

from __future__ import annotations

import pytest
import torch

from hsviewer.core.errors import HsviewerError, failure_message, user_message


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (HsviewerError("No text file at x."), "No text file at x."),
        (FileNotFoundError(2, "No such file or directory", "/a/b"), "/a/b: No such file or directory."),
        (MemoryError(), "Out of memory: try a shorter text, a smaller model or another device."),
        (
            torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
            "Out of memory (2.00 GiB asked for)",
        ),
        (
            RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: you tried to allocate 1024 bytes"),
            "Out of memory (1.0 KB asked for)",
        ),
    ],
)
def test_errors_a_user_can_act_on_get_one_line(error, expected):
    assert user_message(error).startswith(expected)


def test_a_bug_has_no_user_message_but_a_failure_says_what_failed():
    error = ZeroDivisionError("division by zero")
    assert user_message(error) is None
    assert failure_message(error, "the sweep") == "Unexpected error in the sweep: ZeroDivisionError: division by zero"


@pytest.mark.parametrize(
    "error",
    [HsviewerError("bad"), torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), KeyError("x")],
)
def test_a_job_carries_the_exception_itself(qtbot, error):
    # The worker used to send text, and said "Unexpected error" for torch's OutOfMemoryError.
    from hsviewer.gui.worker import Job, Worker

    def work(slot):
        raise error
        yield  # a generator, as every job's work is

    worker = Worker("test-errors")
    try:
        job = Job("boom", "the boom", work, needs_model=False)
        with qtbot.waitSignal(job.failed, timeout=10_000) as blocker:
            worker.submit(job)
        (carried,) = blocker.args
        assert carried is error
        assert failure_message(carried, job.description) == (user_message(error) or failure_message(error, "the boom"))
    finally:
        worker.stop()


def test_torch_out_of_memory_in_a_job_reads_as_out_of_memory():
    error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
    assert failure_message(error, "the sweep").startswith("Out of memory (20.00 MiB asked for)")
