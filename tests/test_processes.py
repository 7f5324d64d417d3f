"""Foreground commands stop their child when they are stopped: Ctrl-C, SIGINT (even when
it was inherited as ignored, as a script's background job starts) and SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ttg_lab.processes import ProcessIdentity

# `ttg-lab dashboard` with Voila replaced by a child that only waits, on a store the
# command takes as prepared: what is under test is how the command stops its child
DASHBOARD = """
import subprocess, sys
from pathlib import Path
from ttg_lab import dashboard
dashboard.voila_command = lambda *a, **k: [sys.executable, "-c", "import time; time.sleep(600)"]
dashboard.has_market_data = lambda url: True
dashboard._prepare = lambda url: None
real_popen = subprocess.Popen
def popen(*args, **kwargs):
    child = real_popen(*args, **kwargs)
    Path(sys.argv[1]).write_text(str(child.pid))
    return child
dashboard.subprocess.Popen = popen
sys.exit(dashboard.serve("sqlite:///" + sys.argv[2]))
"""


def ignore_sigint() -> None:
    """How a background job of a script starts: SIGINT ignored (Python then sets none)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    ("stop", "start_ignoring_sigint"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c", "sigint-inherited-ignored", "sigterm"],
)
def test_the_dashboard_command_stops_voila_when_it_is_stopped(
    tmp_path: Path, stop: signal.Signals, start_ignoring_sigint: bool
) -> None:
    pid_file = tmp_path / "voila.pid"
    command = [sys.executable, "-c", DASHBOARD, str(pid_file), str(tmp_path / "x.db")]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        preexec_fn=ignore_sigint if start_ignoring_sigint else None,
    )
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        child = ProcessIdentity.of(int(pid_file.read_text()))
        assert child is not None
        process.send_signal(stop)
        process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while child.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not child.running()
    finally:
        process.kill()
        process.wait()
