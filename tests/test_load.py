"""Eight runs in parallel on one store (SQLite in WAL mode and PostgreSQL), plus the
dashboard polling: no lost or doubled writes, no 'database is locked' reaching users.

Each model first runs alone in this process (the reference); then eight ``ttg-lab run``
processes run the same eight models at once on the same store while two threads drive
the dashboard's panel controllers against it. Every parallel run must equal its
reference row for row, and no panel or process may report a locked database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select

import ttg_lab
from ttg_lab.engine.ledger import REPRODUCED_COLUMNS
from ttg_lab.lab import Lab
from ttg_lab.store.schema import (
    AgentLog,
    GateDecisionRow,
    LedgerEntry,
    LLMCall,
    ReasoningEntry,
    RunStep,
    TradingRun,
)
from widgets.common import Controller
from widgets.leaderboard import LeaderboardController
from widgets.monitor import MonitorController
from widgets.performance import PerformanceController
from widgets.reasoning import ReasoningController
from widgets.run_control import RunControlController

TTG_LAB = Path(sys.executable).parent / "ttg-lab"
"""The console script installed next to this interpreter."""

DAILY = ("2025-06-10", "2025-10-30")
"""The whole shipped US daily range (100 steps): long enough for the writes to overlap."""
INTRADAY = ("2025-10-06", "2025-10-10")
POLL_PAUSE = 0.2
"""Seconds between two refreshes of a panel (the dashboard's monitor waits 2 s)."""


@dataclass(frozen=True)
class Spec:
    """One model and how it runs."""

    name: str
    ai_model_id: str
    parameters: dict[str, Any] = field(default_factory=dict)
    tickers: tuple[str, ...] = ()
    mode: str = "daily"
    seed: int = 0
    path: str = "chat"

    @property
    def period(self) -> tuple[str, str]:
        return INTRADAY if self.mode == "intraday" else DAILY


SPECS: list[Spec] = [
    Spec("load momentum", "baseline/momentum", {"top_k": 5}),
    Spec("load mean reversion", "baseline/mean_reversion", {"top_k": 5}, path="direct"),
    Spec(
        "load buy and hold",
        "baseline/buy_and_hold",
        tickers=("AAPL", "MSFT", "NVDA", "AMZN"),
        path="direct",
    ),
    Spec("load random 1", "baseline/random", {"trade_probability": 0.6}, seed=1, path="direct"),
    Spec("load random 2", "baseline/random", {"trade_probability": 0.6}, seed=2),
    Spec("load cash", "baseline/cash", path="direct"),
    Spec(
        "load fast momentum", "baseline/momentum", {"top_k": 3, "rebalance_every": 2}, path="direct"
    ),
    Spec(
        "load hourly momentum",
        "baseline/momentum",
        {"top_k": 3, "lookback": 3, "rebalance_every": 3},
        mode="intraday",
    ),
]

ROW_TABLES = (LedgerEntry, RunStep, ReasoningEntry, AgentLog, GateDecisionRow, LLMCall)
UNIQUE_PER_RUN: dict[Any, tuple[Any, ...]] = {
    LedgerEntry: (LedgerEntry.order_id,),
    RunStep: (RunStep.step_index,),
    AgentLog: (AgentLog.step_index,),
    LLMCall: (LLMCall.step_index, LLMCall.attempt, LLMCall.call_index),
}
"""Columns that must not repeat within one run: a doubled write shows up here."""


def row_counts(lab: Lab, run_id: int) -> dict[str, int]:
    with lab.store.session() as session:
        return {
            t.__tablename__: int(
                session.scalar(select(func.count()).select_from(t).where(t.run_id == run_id)) or 0
            )
            for t in ROW_TABLES
        }


def repeated(lab: Lab, run_id: int) -> dict[str, int]:
    """How many key values occur more than once in each table (0 everywhere when sound)."""
    found: dict[str, int] = {}
    with lab.store.session() as session:
        for table, columns in UNIQUE_PER_RUN.items():
            dupes = session.execute(
                select(*columns)
                .where(table.run_id == run_id)
                .group_by(*columns)
                .having(func.count() > 1)
            ).all()
            found[table.__tablename__] = len(dupes)
    return found


def run_row(lab: Lab, run_id: int) -> dict[str, Any]:
    with lab.store.session() as session:
        run = session.get(TradingRun, run_id)
        assert run is not None
        return {
            "status": run.status,
            "error": run.error,
            "steps_done": run.steps_done,
            "steps_total": run.steps_total,
            "total_trades": run.total_trades,
            "final_value": run.final_value,
            "max_drawdown": run.max_drawdown,
            "llm_calls": run.llm_calls,
        }


def peak_overlap(lab: Lab, run_ids: list[int]) -> int:
    """Most runs that were going at the same moment (recorded .. ended, wall clock)."""
    with lab.store.session() as session:
        spans = session.execute(
            select(TradingRun.started_at, TradingRun.ended_at).where(TradingRun.id.in_(run_ids))
        ).all()
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak


def reasoning_rows(lab: Lab, run_id: int) -> pd.DataFrame:
    return lab.run(run_id).reasoning()[["step_index", "ts", "type", "content"]]


class DashboardPoller:
    """Threads that refresh panels the way an open dashboard does, recording every
    exception and every error or message a panel shows."""

    def __init__(self, lab: Lab, signatures: list[str]) -> None:
        self.lab = lab
        self.signatures = signatures
        self.stop = threading.Event()
        self.problems: list[str] = []
        self.calls = 0
        self.seen_running: set[int] = set()
        self._threads = [
            threading.Thread(target=self._loop, args=(self._monitor_cycle,), daemon=True),
            threading.Thread(target=self._loop, args=(self._browse_cycle,), daemon=True),
        ]
        self._monitor = MonitorController(lab)
        self._run_control = RunControlController(lab)
        self._performance = PerformanceController(lab)
        self._board = LeaderboardController(lab)
        self._reasoning = ReasoningController(lab)
        self._turn = 0

    def __enter__(self) -> DashboardPoller:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(30)

    def _loop(self, cycle: Callable[[], None]) -> None:
        while not self.stop.is_set():
            try:
                cycle()
            except Exception as exc:  # a panel method that let an exception through
                self.problems.append(f"{cycle.__name__}: {type(exc).__name__}: {exc}")
            time.sleep(POLL_PAUSE)

    def _check(self, name: str, ctl: Controller) -> None:
        self.calls += 1
        if ctl.error:
            self.problems.append(f"{name}: {ctl.error}")
        if "locked" in ctl.message.lower():
            self.problems.append(f"{name} message: {ctl.message}")

    def _running(self) -> list[int]:
        self._monitor.refresh()  # the runs, read as when the Monitor tab is opened
        self._check("monitor.refresh", self._monitor)
        return [run_id for label, run_id in self._monitor.choices if "(running)" in label]

    def _monitor_cycle(self) -> None:
        """Monitor tab on a running run, the run control's model list, performance's runs."""
        running = self._running()
        if running:
            self._turn += 1
            run_id = running[self._turn % len(running)]
            self._monitor.watch(run_id)
            self._check("monitor.watch", self._monitor)
            self._monitor.load()
            self._check("monitor.load", self._monitor)
            if self._monitor.status == "running":
                self.seen_running.add(run_id)
        self._run_control.refresh()
        assert set(self.signatures) <= set(self._run_control.models)
        self._check("run_control", self._run_control)
        self._performance.refresh()
        self._check("performance", self._performance)

    def _browse_cycle(self) -> None:
        """Leaderboard refresh, then the reasoning browser on the latest run of a model."""
        self._board.refresh()
        self._check("leaderboard", self._board)
        signature = self.signatures[self.calls % len(self.signatures)]
        self._reasoning.choose(signature)
        self._check("reasoning.choose", self._reasoning)
        if self._reasoning._steps:  # a run that has committed no reasoning yet has no days
            self._reasoning.step(+1)
            self._check("reasoning.step", self._reasoning)


def start_process(url: str, spec: Spec, signature: str, folder: Path) -> subprocess.Popen[str]:
    """``ttg-lab run`` for one model, output to files (no pipe to fill up)."""
    start, end = spec.period
    args = [str(TTG_LAB), "run", signature, "--mode", spec.mode, "--start", start, "--end", end]
    args += ["--seed", str(spec.seed), "--path", spec.path]
    env = {**os.environ, "TTG_LAB_DB_URL": url, "COLUMNS": "200"}
    with (
        (folder / f"{signature}.out").open("w") as out,
        (folder / f"{signature}.err").open("w") as err,
    ):
        return subprocess.Popen(args, stdout=out, stderr=err, text=True, env=env)


@pytest.mark.slow
def test_eight_parallel_runs_and_the_dashboard_share_one_store(db_url: str, tmp_path: Path) -> None:
    lab = ttg_lab.open(db_url)
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        signatures, references = [], {}
        for spec in SPECS:
            model = lab.models.create(
                spec.name,
                ai_model_id=spec.ai_model_id,
                initial_cash=100_000.0,
                parameters=spec.parameters,
                tickers=list(spec.tickers),
            )
            start, end = spec.period
            run = lab.start_run(
                model,
                mode=spec.mode,
                start=start,
                end=end,
                seed=spec.seed,
                path=spec.path,
                background=False,
            )
            assert run.status == "completed", run.info.error
            signatures.append(model.signature)
            references[model.signature] = run.id

        started = time.perf_counter()
        with DashboardPoller(lab, signatures) as poller:
            for spec, sig in zip(SPECS, signatures, strict=True):
                procs[sig] = start_process(db_url, spec, sig, tmp_path)
            codes = {sig: proc.wait(timeout=180) for sig, proc in procs.items()}
        elapsed = time.perf_counter() - started

        outputs = {
            sig: (tmp_path / f"{sig}.out").read_text() + (tmp_path / f"{sig}.err").read_text()
            for sig in signatures
        }
        assert codes == dict.fromkeys(signatures, 0), outputs
        for sig in signatures:
            stderr = (tmp_path / f"{sig}.err").read_text()
            assert "locked" not in stderr.lower() and "Traceback" not in stderr, stderr
            assert "locked" not in outputs[sig].lower(), outputs[sig]

        assert poller.problems == []
        assert poller.calls > 20, "the dashboard hardly polled"
        assert poller.seen_running, f"the monitor never saw a run going ({elapsed:.1f} s)"

        parallel_ids = []
        for sig in signatures:
            runs = lab.runs(sig).table()
            assert len(runs) == 2, runs  # the reference and exactly one parallel run
            ref_id = references[sig]
            run_id = int(runs[runs["id"] != ref_id]["id"].iloc[0])
            parallel_ids.append(run_id)
            row, ref_row = run_row(lab, run_id), run_row(lab, ref_id)
            assert row["status"] == "completed" and row["error"] is None, (sig, row)
            assert row["steps_done"] == row["steps_total"] > 0, (sig, row)
            assert row == ref_row, sig
            assert repeated(lab, run_id) == dict.fromkeys(
                [t.__tablename__ for t in UNIQUE_PER_RUN], 0
            ), sig
            assert row_counts(lab, run_id) == row_counts(lab, ref_id), sig
            equity = lab.run(run_id).equity()
            assert list(equity["step_index"]) == list(range(row["steps_total"])), sig
            pd.testing.assert_frame_equal(
                lab.run(run_id).ledger()[REPRODUCED_COLUMNS],
                lab.run(ref_id).ledger()[REPRODUCED_COLUMNS],
            )
            pd.testing.assert_frame_equal(equity, lab.run(ref_id).equity())
            pd.testing.assert_frame_equal(reasoning_rows(lab, run_id), reasoning_rows(lab, ref_id))
        peak = peak_overlap(lab, parallel_ids)
        print(
            f"{len(SPECS)} processes in {elapsed:.1f} s, up to {peak} runs at once, "
            f"{poller.calls} panel refreshes"
        )
        assert peak >= 3, f"the runs hardly overlapped (at most {peak} at once)"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        lab.close()
