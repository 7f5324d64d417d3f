"""A run's handle in this process: waiting for it survives being interrupted."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest

from ttg_lab.runs.handle import RunHandle


class SlowExecutor:
    """Stands in for a run's executor: ends ``completed`` once released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def execute(self) -> str:
        self.release.wait(30)
        return "completed"


def test_a_wait_interrupted_by_ctrl_c_leaves_the_run_running_and_the_next_wait_waits() -> None:
    # Thread.join() interrupted by a signal marks a live thread as ended (CPython 3.11), so
    # a second wait returned at once, mid-run, and the process could exit under the run
    handle = RunHandle(store=None, run_id=1)  # type: ignore[arg-type]  # wait() reads no store
    executor = SlowExecutor()
    handle.start_thread(executor)  # type: ignore[arg-type]

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            handle.wait()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert handle.running
    threading.Timer(0.3, executor.release.set).start()
    started = time.monotonic()
    assert handle.wait() == "completed"
    assert time.monotonic() - started >= 0.2 and not handle.running
