"""Foreground commands stop their child when they are stopped: Ctrl-C, SIGINT (even when
it was inherited as ignored, as a script's background job starts) and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.openai_server import OpenAIStubServer, Quirks
from test_cli import TTG_LAB
from test_llm_quirks import make_model, native_trader

from ttg_lab.lab import Lab
from ttg_lab.processes import ProcessIdentity

PERIOD = ("--start", "2025-06-10", "--end", "2025-07-31")

STOPS = pytest.mark.parametrize(
    ("stop", "start_ignoring_sigint"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c", "sigint-inherited-ignored", "sigterm"],
)

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


@STOPS
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


@STOPS
def test_a_followed_experiment_stops_every_repeat_when_the_command_is_stopped(
    lab: Lab,
    db_url: str,
    openai_stub: OpenAIStubServer,
    stop: signal.Signals,
    start_ignoring_sigint: bool,
) -> None:
    openai_stub.reset(native_trader(), Quirks(answer_delay=0.3))
    model = make_model(lab, openai_stub, "openai-compatible/any", tool_mode="native")
    process = subprocess.Popen(
        [str(TTG_LAB), "run", model.name, "--repeats", "2", *PERIOD],
        env={**os.environ, "TTG_LAB_DB_URL": db_url, "COLUMNS": "200"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=ignore_sigint if start_ignoring_sigint else None,
    )
    try:
        deadline = time.monotonic() + 90
        while (
            not all(run.info.steps_done >= 1 for run in lab.runs(model.name))
            or len(lab.runs(model.name)) < 2
        ):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.2)
        process.send_signal(stop)
        assert process.wait(timeout=60) == 1  # not every repeat completed
        runs = lab.runs(model.name)
        assert [run.status for run in runs] == ["stopped", "stopped"]
        assert all(run.info.steps_done < run.info.steps_total for run in runs)
    finally:
        process.kill()
        process.wait()
