"""Faults: a run killed again and again, a locked SQLite file, dropped PostgreSQL connections.

Each scenario ends with the same ledger (order ids included), equity curve and final value
as an uninterrupted run of the same model, period and seed, and never leaves a
half-written step behind.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from support.pg import fresh_database

import ttg_lab
from ttg_lab import Run
from ttg_lab.engine.events import RunEvent
from ttg_lab.engine.ledger import LEDGER_COLUMNS
from ttg_lab.errors import NotFoundError, RunStateError
from ttg_lab.lab import Lab
from ttg_lab.models import ModelInfo
from ttg_lab.store import leases
from ttg_lab.store.database import Store
from ttg_lab.store.leases import RunLostError
from ttg_lab.store.schema import AgentLog, LedgerEntry, ReasoningEntry, RunStep, TradingRun, utcnow

START, END = "2025-06-10", "2025-09-04"
STEPS = 60  # daily bars from START to END
REASONING_COLUMNS = ["step_index", "ts", "type", "content", "context"]


def make_model(lab: Lab, name: str) -> ModelInfo:
    """A seeded random trader that trades on most days, under risk rules (stop loss,
    drawdown halt) so the restored risk state matters too."""
    model = lab.models.create(
        name,
        ai_model_id="baseline/random",
        initial_cash=100_000.0,
        parameters={"trade_probability": 0.8, "max_fraction": 0.3},
    )
    lab.rules.apply_preset(model, "conservative")
    return model


def assert_same_run(run: Run, reference: Run) -> None:
    """Ledger, equity curve, reasoning and results equal the uninterrupted run's."""
    ledger, expected = run.ledger(), reference.ledger()
    assert (expected["status"] == "filled").sum() > STEPS // 2  # trades on most steps
    pd.testing.assert_frame_equal(ledger[LEDGER_COLUMNS], expected[LEDGER_COLUMNS])
    pd.testing.assert_frame_equal(run.equity(), reference.equity())
    pd.testing.assert_frame_equal(
        run.reasoning()[REASONING_COLUMNS], reference.reasoning()[REASONING_COLUMNS]
    )
    info, ref = run.info, reference.info
    assert info.status == "completed" and info.steps_done == STEPS
    for key in ("final_value", "final_return", "max_drawdown", "total_trades"):
        assert getattr(info, key) == getattr(ref, key), key
    with run.store.session() as session:
        logs = session.scalars(
            select(AgentLog.step_index).where(AgentLog.run_id == run.id).order_by(AgentLog.id)
        ).all()
    assert list(logs) == sorted(set(logs))  # one message log per step, none doubled


def assert_no_partial_step(lab: Lab, run_id: int) -> int:
    """Every row of the run belongs to a committed step; returns the steps done."""
    done = int(lab.run(run_id).info.steps_done)
    with lab.store.session() as session:
        for table in (RunStep, LedgerEntry, ReasoningEntry):
            held = set(session.scalars(select(table.step_index).where(table.run_id == run_id)))
            assert held == set(range(done)), (table.__tablename__, done, sorted(held))
    return done


# -- crash and resume, many times ----------------------------------------------------------

VICTIMS = '''
"""Run (then resume) one run in forked children that SIGKILL themselves at planned points.

argv: one JSON object (url, model, path, seed, start, end, plan: a list of [step, point]).
The modules are imported once here, so a child starts at once. Prints a JSON line a kill.
"""
import json, os, signal, sys, traceback

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from ttg_lab.agents.baselines import SeededRandom
import ttg_lab
from ttg_lab.store.database import Store
from ttg_lab.store.schema import LedgerEntry, RunStep, TradingModel, TradingRun

args = json.loads(sys.argv[1])
url, name, path, plan = args["url"], args["model"], args["path"], args["plan"]
if path == "chat":
    import ttg_lab.llm.agent  # noqa: F401  (the chat path's imports, shared by every child)


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def victim(step, point, run_id):
    lab = ttg_lab.open(url, init=False)
    on_event = None
    if point == "committed":  # just after the step's transaction committed
        def on_event(ev):
            if ev.kind == "step" and ev.step_index == step:
                die()
    elif point == "deciding":  # while the agent decides: nothing of the step written yet
        decide = SeededRandom.step

        def deciding(self, ctx):
            if ctx.step_index == step:
                die()
            return decide(self, ctx)

        SeededRandom.step = deciding
    else:  # "committing": the step's rows are written in its transaction, not committed
        @event.listens_for(Session, "after_flush")
        def committing(session, _context):
            if any(isinstance(o, RunStep) and o.step_index == step for o in session.new):
                die()
    if run_id is None:
        lab.start_run(name, start=args["start"], end=args["end"], seed=args["seed"],
                      path=path, background=False, on_event=on_event)
    else:
        lab.run(run_id).resume(background=False, on_event=on_event)
    os._exit(3)  # the kill point was never reached


run_id = None
for step, point in plan:
    pid = os.fork()
    if pid == 0:
        try:
            victim(step, point, run_id)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    store = Store(url)
    with store.session() as session:
        run = session.scalars(
            select(TradingRun).join(TradingModel).where(TradingModel.signature == name)
            .order_by(TradingRun.id.desc())
        ).first()
        held = {
            table.__tablename__: sorted(session.scalars(
                select(table.step_index).where(table.run_id == run.id).distinct()))
            for table in (RunStep, LedgerEntry)
        }
        report = {"step": step, "point": point, "run_id": run.id, "status": run.status,
                  "steps_done": run.steps_done, **held}
    store.dispose()
    report["killed"] = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    print(json.dumps(report), flush=True)
    run_id = run.id
'''

KILL_POINTS = ("committed", "deciding", "committing")


def kill_plan(seed: int, kills: int) -> list[tuple[int, str]]:
    """``kills`` distinct random steps, each with a kill point (every point used)."""
    rng = random.Random(seed)
    steps = sorted(rng.sample(range(1, STEPS - 1), kills))
    points = [KILL_POINTS[i % len(KILL_POINTS)] for i in range(kills)]
    rng.shuffle(points)
    return list(zip(steps, points, strict=True))


@pytest.mark.slow
def test_a_run_killed_at_many_random_steps_resumes_to_the_uninterrupted_result(
    lab: Lab, db_url: str, backend: str, tmp_path: Path
) -> None:
    """Eight kills on SQLite (chat path, the default); three on PostgreSQL (direct path,
    which skips the chat path's slow imports: the server's side is what is new there)."""
    path, kills = ("chat", 8) if backend == "sqlite" else ("direct", 3)
    model = make_model(lab, "crash often")
    reference = lab.start_run(model, start=START, end=END, seed=5, path=path, background=False)
    assert reference.status == "completed"

    plan = kill_plan(2025, kills)
    script = tmp_path / "victims.py"
    script.write_text(VICTIMS)
    args = {"url": db_url, "model": model.signature, "path": path, "seed": 5}
    args.update(start=START, end=END, plan=plan)
    victims = subprocess.run(
        [sys.executable, str(script), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert victims.returncode == 0, victims.stderr[-3000:]
    reports = [json.loads(line) for line in victims.stdout.splitlines()]
    assert [(r["step"], r["point"]) for r in reports] == [tuple(p) for p in plan]
    run_id = reports[0]["run_id"]
    for report in reports:  # killed exactly where planned, leaving whole steps only
        done = report["step"] + (report["point"] == "committed")
        assert report["killed"] and report["run_id"] == run_id, (report, victims.stderr[-3000:])
        assert report["status"] == "running" and report["steps_done"] == done, report
        assert report["run_steps"] == report["ledger"] == list(range(done)), report
    assert assert_no_partial_step(lab, run_id) == done

    resumed = lab.run(run_id).resume(background=False)
    assert_same_run(resumed, reference)
    assert resumed.info.run_number == 2


# -- processes racing to resume one run ----------------------------------------------------

RACERS = '''
"""Rounds of forked processes racing through the CLI for one run.

argv: one JSON object (url, model, start, end, seed, racers, kills, folder). Round 0: one
child runs `ttg-lab run MODEL --path direct` and SIGKILLs itself just after committing
step kills[0]. Each later round: `racers` children run `ttg-lab resume RUN`, entering the
resume at the same moment (a barrier); the one that executes steps waits at its first step
until the others have finished (so each of them met the run while it was held), then dies
after committing step kills[round] (or runs to the end in the last round). Prints a JSON
line per child.
"""
import json, multiprocessing, os, signal, sys, time
from pathlib import Path

from sqlalchemy import select

import ttg_lab.cli as cli
from ttg_lab.engine.events import EventBus
from ttg_lab.runs.service import RunService
from ttg_lab.store.database import Store
from ttg_lab.store.schema import TradingModel, TradingRun

args = json.loads(sys.argv[1])
emit = EventBus.emit
resume = RunService.resume


def wait_for(folder, pattern, count):
    deadline = time.monotonic() + 60
    while len(list(folder.glob(pattern))) < count:
        assert time.monotonic() < deadline, f"waited for {count} {pattern}"
        time.sleep(0.005)


def child(folder, i, racers, kill_at, command, barrier):
    out = os.open(folder / f"out-{i}", os.O_WRONLY | os.O_CREAT)
    os.dup2(out, 1)
    os.dup2(out, 2)
    ran = []

    def spy(bus, event):
        if event.kind == "step":
            if not ran:
                ran.append(event.step_index)
                (folder / f"ran-{i}").touch()
                wait_for(folder, "done-*", racers - 1)
            if event.step_index == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        emit(bus, event)

    def resume_together(service, *args, **kwargs):
        barrier.wait(60)
        return resume(service, *args, **kwargs)

    EventBus.emit = spy
    RunService.resume = resume_together
    code = 0
    try:
        cli.main(["--db", args["url"], *command])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    (folder / f"done-{i}").write_text(str(code))


def race(number, racers, kill_at, command):
    folder = Path(args["folder"]) / f"round-{number}"
    folder.mkdir()
    barrier = multiprocessing.Barrier(racers)
    pids = {}
    for i in range(racers):
        pid = os.fork()
        if pid == 0:
            try:
                child(folder, i, racers, kill_at, command, barrier)
            finally:
                os._exit(0)
        pids[pid] = i
    for pid, i in pids.items():
        _, status = os.waitpid(pid, 0)
        done = folder / f"done-{i}"
        print(json.dumps({
            "round": number,
            "racer": i,
            "killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL,
            "code": int(done.read_text()) if done.exists() else None,
            "ran": (folder / f"ran-{i}").exists(),
            "output": (folder / f"out-{i}").read_text(),
        }), flush=True)


kills = args["kills"]
race(0, 1, kills[0], ["run", args["model"], "--start", args["start"], "--end", args["end"],
                      "--seed", str(args["seed"]), "--path", "direct"])
store = Store(args["url"])
with store.session() as session:
    run_id = session.scalars(select(TradingRun.id).join(TradingModel)
                             .where(TradingModel.signature == args["model"])
                             .order_by(TradingRun.id.desc())).first()
store.dispose()
for number, kill_at in enumerate([*kills[1:], None], start=1):
    race(number, args["racers"], kill_at, ["resume", str(run_id)])
'''

REFUSED = re.compile(
    r"error: run (\d+) (is still running in process \S+ \(heartbeat|was just claimed by process)"
)


@pytest.mark.slow
def test_processes_racing_to_resume_a_killed_run_let_exactly_one_in(
    lab: Lab, db_url: str, tmp_path: Path
) -> None:
    """Three rounds of three CLI processes resuming one killed run at the same moment:
    each round exactly one executes it, the others exit 1 saying who runs it, and the
    final ledger is the uninterrupted run's."""
    model = make_model(lab, "raced")
    reference = lab.start_run(model, start=START, end=END, seed=5, path="direct", background=False)
    script = tmp_path / "racers.py"
    script.write_text(RACERS)
    args = {"url": db_url, "model": model.signature, "start": START, "end": END, "seed": 5}
    args.update(racers=3, kills=[9, 23, 41], folder=str(tmp_path))
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(args)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    assert reports[0]["ran"] and reports[0]["killed"], reports[0]
    run_id = int(lab.runs(model).table().iloc[0]["id"])
    for number in (1, 2, 3):
        racers = [r for r in reports if r["round"] == number]
        winners = [r for r in racers if r["ran"]]
        assert len(racers) == 3 and len(winners) == 1, racers
        (winner,) = winners
        assert winner["killed"] if number < 3 else winner["code"] == 0, winner
        for loser in racers:
            if loser is not winner:
                refused = REFUSED.search(loser["output"])
                assert loser["code"] == 1 and refused, loser
                assert int(refused.group(1)) == run_id, loser
    resumed = lab.run(run_id)
    assert_same_run(resumed, reference)
    assert assert_no_partial_step(lab, run_id) == STEPS
    assert resumed.info.worker is None and not resumed.info.live
    with lab.store.session() as session:
        attempts = set(session.scalars(select(RunStep.attempt).where(RunStep.run_id == run_id)))
    assert attempts == {0, 1, 2, 3}  # each round's winner committed steps of its own


def test_two_claims_that_both_saw_the_run_free_let_only_one_in(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim is decided by its UPDATE, not by what it read: another claim that wins
    between the read and the UPDATE leaves this one refused, naming the winner."""
    model = make_model(lab, "claimed twice")
    run = lab.start_run(model, start=START, end="2025-06-20", path="direct", background=False)
    with lab.store.session() as session:
        row = session.get(TradingRun, run.id)
        assert row is not None
        row.status = "failed"
    checked = leases.check_claimable

    def read_then_lose(store_url: str, seen: TradingRun) -> None:
        checked(store_url, seen)
        monkeypatch.setattr(leases, "check_claimable", checked)
        leases.claim(lab.store, run.id)  # the other claim, in between

    monkeypatch.setattr(leases, "check_claimable", read_then_lose)
    with pytest.raises(RunStateError, match=f"run {run.id} was just claimed by process "):
        leases.claim(lab.store, run.id)
    with lab.store.session() as session:
        assert session.scalar(select(TradingRun.attempt).where(TradingRun.id == run.id)) == 1


OTHER_WORKER = "otherhost:4242"


@pytest.mark.parametrize("takeover", ["claimed", "claimed and committed", "deleted"])
def test_a_run_taken_from_its_worker_stops_it_before_it_writes_again(
    lab: Lab, takeover: str
) -> None:
    """After step 20 another worker claims the run (and, in one case, commits step 21 as
    it sees it), or the run is deleted: this worker stops at step 21 with a clear
    RunLostError, never goes on with its own portfolio, and leaves the row alone."""
    model = make_model(lab, "taken over")
    reference = lab.start_run(model, start=START, end=END, path="direct", background=False)
    day_21 = reference.equity()["ts"][21].to_pydatetime()

    def take_over(ev: RunEvent) -> None:
        if ev.kind != "step" or ev.step_index != 20:
            return
        with lab.store.session() as session:
            row = session.get(TradingRun, ev.run_id)
            assert row is not None
            if takeover == "deleted":
                session.delete(row)
                return
            row.worker, row.attempt, row.heartbeat_at = OTHER_WORKER, row.attempt + 1, utcnow()
            if takeover == "claimed and committed":
                row.steps_done = 22
                session.add(
                    RunStep(
                        run_id=ev.run_id,
                        step_index=21,
                        ts=day_21,
                        cash=1.0,
                        equity=1.0,
                        holdings={},
                        attempt=row.attempt,
                    )
                )

    run = lab.start_run(model, start=START, end=END, path="direct", on_event=take_over)
    why = (
        f"run {run.id} no longer exists"
        if takeover == "deleted"
        else rf"run {run.id} was taken over by {OTHER_WORKER} \(attempt 1; this process ran "
        r"attempt 0\)"
    )
    with pytest.raises(RunLostError, match=rf"{why}.*; this process stopped at step 21 \("):
        run.wait(60)
    if takeover == "deleted":
        with pytest.raises(NotFoundError):
            _ = run.info
        return
    info = run.info
    assert (info.status, info.worker, info.steps_done) == (
        "running",
        OTHER_WORKER,
        22 if takeover == "claimed and committed" else 21,
    )
    ledger, expected = run.ledger(), reference.ledger()
    pd.testing.assert_frame_equal(  # this worker's steps 0..20 and nothing after
        ledger[LEDGER_COLUMNS], expected[expected["step_index"] < 21][LEDGER_COLUMNS]
    )
    steps = run.equity()
    mine = steps[steps["step_index"] < 21]
    pd.testing.assert_frame_equal(mine, reference.equity()[reference.equity()["step_index"] < 21])
    assert list(steps["step_index"]) == list(range(22 if takeover != "claimed" else 21))


class Outage:
    """The database turns unreachable for a run's own threads (steps, heartbeat, end),
    as a dead server would, until lifted; the test's thread still reaches it."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = False
        reach = store.session

        @contextmanager
        def session() -> Iterator[Session]:
            if self.down and threading.current_thread().name.startswith(("ttg-run", "ttg-heart")):
                raise OperationalError("COMMIT", {}, ConnectionRefusedError("connection refused"))
            with reach() as opened:
                yield opened

        monkeypatch.setattr(store, "session", session)


def test_a_run_whose_end_cannot_be_recorded_fails_and_stays_resumable(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away after step 20: step 21 and then the run's own end cannot
    be written. The run ends ``failed`` for its caller with the reason, its heartbeat
    stops (so any process may resume it once it is stale, this one at once), and the
    resume reaches the uninterrupted ledger."""
    monkeypatch.setenv("TTG_LAB_DB_RETRIES", "1")
    monkeypatch.setenv("TTG_LAB_RUN_STALE_AFTER", "0.6")  # heartbeats every 0.1 s
    model = make_model(lab, "outage")
    reference = lab.start_run(model, start=START, end=END, path="direct", background=False)
    outage = Outage(lab.store, monkeypatch)
    errors: list[str] = []

    def go_down(ev: RunEvent) -> None:
        if ev.kind == "step" and ev.step_index == 20:
            outage.down = True
        if ev.kind == "error":
            errors.append(ev.message)

    run = lab.start_run(model, start=START, end=END, path="direct", on_event=go_down)
    assert run.wait(60) == "failed"
    outage.down = False
    assert "step 21" in errors[0] and "connection refused" in errors[0]
    assert errors[1].startswith(f"the end of run {run.id} (failed) could not be recorded: ")
    assert errors[1].endswith("heartbeat is 0.6 s old, then any process may resume it")
    info = run.info
    assert info.status == "running" and info.steps_done == 21 and not info.live
    time.sleep(0.5)
    assert run.info.heartbeat_at == info.heartbeat_at  # nobody beats for it any more

    resumed = lab.run(run.id).resume(background=False)
    assert_same_run(resumed, reference)


# -- a locked SQLite file ------------------------------------------------------------------
# -- a locked SQLite file ------------------------------------------------------------------


class WriteLock:
    """Another connection holding the SQLite write lock (BEGIN IMMEDIATE) on a file."""

    def __init__(self, db_url: str) -> None:
        path = make_url(db_url).database
        assert path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.held = False

    def acquire(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.release()
        self.conn.close()


@pytest.fixture()
def fast_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite waits 0.1 s for a lock; a transaction is retried 8 times (~6 s budget)."""
    monkeypatch.setenv("TTG_LAB_DB_BUSY_TIMEOUT", "0.1")
    monkeypatch.setenv("TTG_LAB_DB_RETRIES", "8")


@pytest.mark.parametrize("path", ["direct", "chat"])  # chat also records its LLM calls
def test_a_briefly_locked_sqlite_file_delays_a_run_but_changes_nothing(
    sqlite_url: str, fast_locks: None, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    lab = ttg_lab.open(sqlite_url)
    lock = WriteLock(sqlite_url)
    try:
        model = make_model(lab, "locked briefly")
        reference = lab.start_run(model, start=START, end=END, path=path, background=False)

        def hold_the_lock(ev: RunEvent) -> None:
            if ev.kind == "step" and ev.step_index == 20:
                lock.acquire()  # step 21 cannot commit until the timer releases it
                threading.Timer(1.0, lock.release).start()

        caplog.set_level(logging.WARNING, logger="ttg_lab")
        run = lab.start_run(model, start=START, end=END, path=path, on_event=hold_the_lock)
        assert run.wait(60) == "completed", run.info.error
        assert_same_run(run, reference)
        retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
        assert retries and all("database is locked" in m for m in retries), retries
    finally:
        lock.close()
        lab.close()


def test_a_sqlite_file_locked_too_long_fails_the_run_cleanly_and_resume_recovers(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTG_LAB_DB_BUSY_TIMEOUT", "0.1")
    monkeypatch.setenv("TTG_LAB_DB_RETRIES", "2")
    lab = ttg_lab.open(sqlite_url)
    lock = WriteLock(sqlite_url)
    try:
        model = make_model(lab, "locked for good")
        reference = lab.start_run(model, start=START, end=END, path="direct", background=False)

        def hold_the_lock(ev: RunEvent) -> None:
            if ev.kind == "step" and ev.step_index == 20:
                lock.acquire()
            if ev.kind == "error":  # the run gave up: let it record why
                lock.release()

        run = lab.start_run(model, start=START, end=END, path="direct", on_event=hold_the_lock)
        assert run.wait(30) == "failed"
        error = run.info.error
        assert error.startswith(f"step 21 ({reference.equity()['ts'][21]:%Y-%m-%d %H:%M}): ")
        assert "database is locked" in error and str(make_url(sqlite_url).database) in error
        assert "gave up after 3 attempts" in error
        assert assert_no_partial_step(lab, run.id) == 21

        resumed = lab.run(run.id).resume()
        assert resumed.wait(60) == "completed"
        assert_same_run(resumed, reference)
    finally:
        lock.close()
        lab.close()


SLOW_CLI = (
    "import sys, time; from ttg_lab.agents.baselines import CashOnly; decide = CashOnly.decide; "
    "CashOnly.decide = lambda self, ctx: time.sleep(0.2) or decide(self, ctx); "
    "from ttg_lab.cli import main; main(sys.argv[1:])"
)
"""The command line, its cash baseline taking 0.2 s a step."""


def test_the_command_line_exits_1_when_the_database_stays_locked_to_the_end(
    sqlite_url: str,
) -> None:
    """`ttg-lab run` meets a SQLite file locked from step 2 on, past its retries, for its
    steps and its own end: it exits 1 saying why; the run, left `running`, resumes."""
    lab = ttg_lab.open(sqlite_url)
    lock = WriteLock(sqlite_url)
    try:
        lab.models.create("locked out", ai_model_id="baseline/cash")
        env = {**os.environ, "TTG_LAB_DB_BUSY_TIMEOUT": "0.1", "TTG_LAB_DB_RETRIES": "1"}
        command = [sys.executable, "-c", SLOW_CLI, "--db", sqlite_url, "run", "locked-out"]
        cli = subprocess.Popen(
            [*command, "--start", START, "--end", "2025-06-20", "--path", "direct"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 60
        while lab.runs().table().empty or lab.run(1).info.steps_done < 2:
            assert time.monotonic() < deadline and cli.poll() is None, "the run did not start"
            time.sleep(0.02)
        lock.acquire()
        out, err = cli.communicate(timeout=120)
        lock.release()
        assert cli.returncode == 1, out + err
        assert "could not be recorded" in out and "database is locked" in out, out
        assert lab.run(1).info.status == "running"
        assert lab.run(1).resume(background=False).status == "completed"
    finally:
        lock.close()
        lab.close()


# -- dropped PostgreSQL connections --------------------------------------------------------


class ConnectionKiller:
    """Terminates the run's PostgreSQL backends at planned points of planned steps.

    ``plan`` maps a step to (point, times): the point is the first statement of the step
    transaction (``progress``, the update fenced by the run's lease), its first insert
    (``ledger``), the ``commit``, or ``after commit`` (the commit succeeded but the client
    hears of a dropped connection, so it cannot know); ``times`` is how many attempts of
    that step lose their connection.
    """

    def __init__(self, url: str, engine: Engine, plan: dict[int, tuple[str, int]]) -> None:
        self.admin = create_engine(url, poolclass=NullPool)
        self.engine = engine
        self.plan = {step: [point, times] for step, (point, times) in plan.items()}
        self.step = 0
        self.in_step = False
        self.kills: list[tuple[int, str]] = []
        self._do_commit = engine.dialect.do_commit
        engine.dialect.do_commit = self._commit  # type: ignore[method-assign]
        event.listen(engine, "before_cursor_execute", self._statement)

    def remove(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        del self.engine.dialect.do_commit
        self.admin.dispose()

    def on_event(self, ev: RunEvent) -> None:
        if ev.kind == "step":
            self.step = int(ev.step_index or 0) + 1

    def _due(self, point: str) -> bool:
        planned = self.plan.get(self.step)
        if not self.in_step or planned is None or planned[0] != point or planned[1] == 0:
            return False
        planned[1] -= 1
        self.kills.append((self.step, point))
        with self.admin.connect() as conn:  # every other backend of the database
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        return True

    @staticmethod
    def _in_run_thread() -> bool:
        """Statements of the run's own thread (not its heartbeat's, nor the test's)."""
        return threading.current_thread().name.startswith("ttg-run-")

    def _statement(self, conn: Connection, cursor: Any, statement: str, *_: Any) -> None:
        if not self._in_run_thread():
            return
        if statement.startswith("UPDATE trading_runs SET") and "steps_done=" in statement:
            self.in_step = True
            self._due("progress")
        elif statement.startswith("INSERT INTO ledger"):
            self._due("ledger")

    def _commit(self, dbapi_connection: Any) -> None:
        if not self._in_run_thread():
            self._do_commit(dbapi_connection)
            return
        self._due("commit")
        self._do_commit(dbapi_connection)
        dropped = self._due("after commit")
        self.in_step = False
        if dropped:
            raise psycopg.OperationalError("server closed the connection unexpectedly")


@pytest.fixture()
def pg_url(pg_template: str) -> Iterator[str]:
    """A PostgreSQL copy of the template store (skipped without a server)."""
    with fresh_database(template=pg_template) as url:
        yield url


@pytest.fixture()
def pg_lab(pg_url: str) -> Iterator[Lab]:
    lab = ttg_lab.open(pg_url)
    yield lab
    lab.close()


def test_dropped_postgres_connections_are_retried_without_doubling_rows(
    pg_lab: Lab, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTG_LAB_DB_RETRIES", "3")
    model = make_model(pg_lab, "pg drops")
    reference = pg_lab.start_run(model, start=START, end=END, path="direct", background=False)
    killer = ConnectionKiller(
        pg_url,
        pg_lab.store.engine,
        {
            8: ("ledger", 1),
            18: ("progress", 2),
            28: ("commit", 1),
            38: ("after commit", 1),
            48: ("ledger", 4),  # more than the retry budget: the run fails
        },
    )
    try:
        run = pg_lab.start_run(model, start=START, end=END, path="direct", on_event=killer.on_event)
        assert run.wait(120) == "failed"
    finally:
        killer.remove()
    assert killer.kills == [
        (8, "ledger"),
        (18, "progress"),
        (18, "progress"),
        (28, "commit"),
        (38, "after commit"),
        *[(48, "ledger")] * 4,
    ]
    error = run.info.error
    assert error.startswith(f"step 48 ({reference.equity()['ts'][48]:%Y-%m-%d %H:%M}): ")
    assert "gave up after 4 attempts" in error
    assert make_url(pg_url).database in error and "ttg:ttg@" not in error
    assert assert_no_partial_step(pg_lab, run.id) == 48

    resumed = pg_lab.run(run.id).resume(background=False)
    assert_same_run(resumed, reference)  # ledger, reasoning and logs: no row written twice
