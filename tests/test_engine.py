"""The run engine: exact results, stop, failure, resume after a kill, isolation."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from ttg_lab.agents.baselines import CashOnly
from ttg_lab.config import resolve_settings
from ttg_lab.engine.events import RunEvent
from ttg_lab.errors import ConfigError, NotFoundError, RunStateError, ValidationError
from ttg_lab.lab import Lab
from ttg_lab.llm.recording import ReplayError
from ttg_lab.market.shipped import read_shipped
from ttg_lab.store.leases import worker_id
from ttg_lab.store.schema import Dataset, TradingRun, utcnow

LEDGER_COLUMNS = [
    "step_index",
    "ts",
    "action",
    "symbol",
    "quantity",
    "fill_price",
    "fees",
    "cash_after",
    "holdings",
    "order_id",
    "status",
    "reason",
]


def test_buy_and_hold_qqq_matches_the_hand_computation(lab: Lab) -> None:
    model = lab.models.create(
        "qqq", ai_model_id="baseline/buy_and_hold", tickers=["QQQ"], initial_cash=10_000.0
    )
    run = lab.start_run(model, start="2025-06-10", end="2025-10-30", costs="zero")
    assert run.wait(60) == "completed"

    bars = read_shipped("us_daily", resolve_settings().data_dir)
    qqq = bars[bars["symbol"] == "QQQ"].sort_values("ts")
    first_open = float(qqq["open"].iloc[0])
    last_close = float(qqq["close"].iloc[-1])
    shares = math.floor(10_000.0 / first_open)
    expected = (10_000.0 - shares * first_open) + shares * last_close

    info = run.info
    assert info.steps_total == 100
    assert abs(info.final_value - expected) < 1e-9
    assert abs(info.final_return - (expected / 10_000.0 - 1)) < 1e-12
    ledger = run.ledger()
    fills = ledger[ledger["status"] == "filled"]
    assert fills[["action", "symbol", "quantity", "fill_price"]].values.tolist() == [
        ["buy", "QQQ", shares, first_open]
    ]
    assert (ledger["action"] == "no_trade").sum() == 99
    equity = run.equity()
    assert len(equity) == 100 and equity["equity"].iloc[-1] == info.final_value


def test_equity_reconciles_at_every_step(lab: Lab) -> None:
    model = lab.models.create("mom", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    run = lab.start_run(model, costs="ibkr-fixed")
    assert run.wait(60) == "completed"
    bars = read_shipped("us_daily", resolve_settings().data_dir).set_index(["symbol", "ts"])[
        "close"
    ]
    for row in run.equity().itertuples():
        value = sum(q * bars[(s, row.ts)] for s, q in row.holdings.items())
        assert math.isclose(row.cash + value, row.equity, rel_tol=1e-12, abs_tol=1e-6)
    ledger = run.ledger()
    fills = ledger[ledger["status"] == "filled"]
    assert len(fills) == run.info.total_trades > 0
    assert (ledger["cash_after"] >= 0).all()


def test_run_numbers_count_per_model(lab: Lab) -> None:
    a = lab.models.create("a", ai_model_id="baseline/cash")
    b = lab.models.create("b", ai_model_id="baseline/cash")
    numbers = []
    for model in (a, a, b, a):
        run = lab.start_run(model, start="2025-06-10", end="2025-06-20", background=False)
        numbers.append((run.info.model, run.info.run_number))
    assert numbers == [("a", 1), ("a", 2), ("b", 1), ("a", 3)]
    assert list(lab.runs("a").table()["run_number"]) == [3, 2, 1]


def test_stop_ends_the_run_within_one_step(lab: Lab) -> None:
    model = lab.models.create("stopper", ai_model_id="baseline/momentum")

    def on_event(event: RunEvent) -> None:
        if event.kind == "step" and event.data["done"] == 7:
            lab.run(event.run_id).stop()

    run = lab.start_run(model, start="2025-06-10", end="2025-10-30", on_event=on_event)
    assert run.wait(60) == "stopped"
    info = run.info
    assert info.steps_done == 7 < info.steps_total
    assert len(run.equity()) == 7
    assert info.final_value == run.equity()["equity"].iloc[-1]
    assert info.error is None


def test_a_failing_agent_fails_the_run_with_its_reason(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = lab.models.create("faulty", ai_model_id="baseline/cash")
    original = CashOnly.step

    def decide(self: CashOnly, ctx):  # type: ignore[no-untyped-def]
        if ctx.step_index == 4:
            raise ZeroDivisionError("strategy divided by zero")
        return original(self, ctx)

    monkeypatch.setattr(CashOnly, "step", decide)
    run = lab.start_run(model)
    assert run.wait(60) == "failed"
    info = run.info
    assert "ZeroDivisionError: strategy divided by zero" in info.error
    assert "step 4 (2025-06-16" in info.error
    assert info.steps_done == 4  # the failing step left nothing behind
    assert set(run.ledger()["step_index"]) == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "weekly"}, "mode must be one of"),
        ({"start": "2025-09-01", "end": "2025-08-01"}, "is before start"),
        ({"start": "2024-01-01", "end": "2024-02-01"}, "no 1d bars"),
        ({"start": "not a date"}, "is not a date"),
        ({"costs": "free"}, "unknown cost preset"),
        ({"fill": "vwap"}, "unknown fill policy"),
    ],
)
def test_bad_run_requests_record_nothing(lab: Lab, kwargs: dict[str, object], message: str) -> None:
    model = lab.models.create("m", ai_model_id="baseline/cash")
    with pytest.raises(ValidationError, match=message):
        lab.start_run(model, **kwargs)  # type: ignore[arg-type]
    assert lab.runs().table().empty


@pytest.mark.parametrize("value", ["0", "soon"])
def test_a_bad_stale_limit_refuses_the_run_before_anything_is_written(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    model = lab.models.create("m", ai_model_id="baseline/cash")
    monkeypatch.setenv("TTG_LAB_RUN_STALE_AFTER", value)
    with pytest.raises(ConfigError, match=f"TTG_LAB_RUN_STALE_AFTER must .*{value}"):
        lab.start_run(model)
    assert lab.runs().table().empty


def test_unknown_model_and_run_are_clear_errors(lab: Lab) -> None:
    with pytest.raises(NotFoundError, match="no model 'ghost'"):
        lab.start_run("ghost")
    with pytest.raises(NotFoundError, match="no run 999"):
        lab.run(999)


def test_completed_runs_cannot_be_resumed(lab: Lab) -> None:
    model = lab.models.create("done", ai_model_id="baseline/cash")
    run = lab.start_run(model, start="2025-06-10", end="2025-06-12", background=False)
    with pytest.raises(RunStateError, match="completed"):
        lab.run(run.id).resume()


def test_intraday_run_steps_through_every_hourly_bar(lab: Lab) -> None:
    model = lab.models.create(
        "hourly", ai_model_id="baseline/momentum", parameters={"lookback": 6, "rebalance_every": 6}
    )
    run = lab.start_run(model, mode="intraday")
    assert run.wait(60) == "completed"
    info = run.info
    assert info.steps_total == info.steps_done == 174
    assert info.start.hour == 10 and info.end.strftime("%Y-%m-%d %H") == "2025-11-10 15"
    assert info.total_trades > 0


def test_parallel_runs_do_not_share_state(lab: Lab) -> None:
    specs = [
        ("p-mom", "baseline/momentum"),
        ("p-rev", "baseline/mean_reversion"),
        ("p-rnd", "baseline/random"),
    ]
    models = [
        lab.models.create(name, ai_model_id=agent, initial_cash=50_000.0) for name, agent in specs
    ]
    together = [lab.start_run(m) for m in models]
    for run in together:
        assert run.wait(120) == "completed"
    alone = [lab.start_run(m, background=False) for m in models]
    for a, b in zip(together, alone, strict=True):
        pd.testing.assert_frame_equal(a.ledger()[LEDGER_COLUMNS], b.ledger()[LEDGER_COLUMNS])


KILL_SCRIPT = """
import sys, time
import ttg_lab
lab = ttg_lab.open(sys.argv[1])
def slow(event):
    if event.kind == "step":
        time.sleep(0.03)
run = lab.start_run(sys.argv[2], start="2025-06-10", end="2025-10-30", seed=7, on_event=slow)
run.wait()
"""


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_ledger(lab: Lab, db_url: str, tmp_path: Path) -> None:
    model = lab.models.create(
        "crashy",
        ai_model_id="baseline/random",
        initial_cash=100_000.0,
        parameters={"trade_probability": 0.6},
    )
    reference = lab.start_run(model, seed=7, background=False)
    assert reference.status == "completed"

    script = tmp_path / "victim.py"
    script.write_text(KILL_SCRIPT)
    victim = subprocess.Popen([sys.executable, str(script), db_url, "crashy"])
    try:
        deadline = time.time() + 60
        run_id = None
        while time.time() < deadline:
            with lab.store.session() as session:
                row = session.query(TradingRun).filter_by(model_id=model.id, run_number=2).first()
                if row is not None and row.steps_done >= 23:
                    run_id = row.id
                    break
            time.sleep(0.01)
        assert run_id is not None, "victim run did not progress"
        os.kill(victim.pid, signal.SIGKILL)
    finally:
        victim.wait(30)
    info = lab.run(run_id).info
    assert info.status == "running" and 23 <= info.steps_done < 100

    resumed = lab.run(run_id).resume()
    assert resumed.wait(60) == "completed"
    pd.testing.assert_frame_equal(
        resumed.ledger()[LEDGER_COLUMNS], reference.ledger()[LEDGER_COLUMNS]
    )
    pd.testing.assert_frame_equal(
        resumed.equity().drop(columns=[]), reference.equity().drop(columns=[])
    )
    assert resumed.info.final_value == reference.info.final_value
    assert resumed.info.total_trades == reference.info.total_trades


def test_resume_refuses_a_run_whose_process_is_alive(lab: Lab) -> None:
    model = lab.models.create("alive", ai_model_id="baseline/cash")
    run = lab.start_run(model, start="2025-06-10", end="2025-06-12", background=False)
    with lab.store.session() as session:
        row = session.get(TradingRun, run.id)
        assert row is not None
        row.status = "running"
        row.worker = f"{os.uname().nodename}:1"  # pid 1 is alive
    with pytest.raises(RunStateError, match="still running"):
        lab.run(run.id).resume()


def failing_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """The cash baseline raises at ``step`` (the run fails there, resumable)."""
    original = CashOnly.step

    def decide(self: CashOnly, ctx):  # type: ignore[no-untyped-def]
        if ctx.step_index == step:
            raise ZeroDivisionError("strategy divided by zero")
        return original(self, ctx)

    monkeypatch.setattr(CashOnly, "step", decide)


@pytest.mark.parametrize("beat_age", [5.0, 600.0])
def test_a_worker_on_another_host_holds_its_run_while_its_heartbeat_is_fresh(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, beat_age: float
) -> None:
    failing_at(monkeypatch, 4)
    model = lab.models.create("remote", ai_model_id="baseline/cash")
    run = lab.start_run(model, start="2025-06-10", end="2025-06-20", background=False)
    monkeypatch.undo()
    with lab.store.session() as session:  # as if a process on another host ran it
        row = session.get(TradingRun, run.id)
        assert row is not None and row.status == "failed"
        row.status, row.worker = "running", "otherhost:77"
        row.heartbeat_at = utcnow() - timedelta(seconds=beat_age)
    if beat_age < 60:  # TTG_LAB_RUN_STALE_AFTER's default
        with pytest.raises(
            RunStateError, match=r"still running in process otherhost:77 \(heartbeat 5\.\d s ago\)"
        ):
            lab.run(run.id).resume()
        assert run.info.worker == "otherhost:77"
    else:
        assert lab.run(run.id).resume(background=False).status == "completed"


FOREIGN_CLI = (
    "import socket, sys; socket.gethostname = lambda: 'otherhost'; "
    "from ttg_lab.cli import main; main(sys.argv[1:])"
)
"""The command line as run on another host."""


def test_a_slow_step_keeps_its_run_held_against_other_hosts(
    lab: Lab, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A freshly started run spends longer in one step than the stale limit: its
    heartbeat still beats, so `ttg-lab resume` on another host is refused."""
    monkeypatch.setenv("TTG_LAB_RUN_STALE_AFTER", "1")
    entered, release = threading.Event(), threading.Event()
    original = CashOnly.step

    def decide(self: CashOnly, ctx):  # type: ignore[no-untyped-def]
        if ctx.step_index == 2:
            entered.set()
            release.wait(120)
        return original(self, ctx)

    monkeypatch.setattr(CashOnly, "step", decide)
    model = lab.models.create("slow step", ai_model_id="baseline/cash")
    run = lab.start_run(model, start="2025-06-10", end="2025-06-20", path="direct")
    try:
        assert entered.wait(60)
        time.sleep(1.5)  # beyond the stale limit: only the heartbeat shows it alive
        other = subprocess.run(
            [sys.executable, "-c", FOREIGN_CLI, "--db", db_url, "resume", str(run.id)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        release.set()
    assert other.returncode == 1, other.stdout + other.stderr
    assert f"error: run {run.id} is still running in process {worker_id()}" in other.stdout
    assert run.wait(60) == "completed"
    assert run.info.steps_done == run.info.steps_total


def test_a_run_that_cannot_go_on_is_refused_and_left_as_it_was(lab: Lab) -> None:
    """Resuming a run whose data changed, or replaying a run that made no LLM calls, is
    refused before any row is written or changed."""
    model = lab.models.create("changed data", ai_model_id="baseline/cash")
    run = lab.start_run(model, start="2025-06-10", end="2025-06-20", path="direct")
    assert run.wait(60) == "completed"
    with lab.store.session() as session:  # as if it had failed at step 5
        failed = session.get(TradingRun, run.id)
        assert failed is not None
        failed.status, failed.worker, failed.steps_done = "failed", None, 5
        dataset = session.scalars(select(Dataset).where(Dataset.name == "us_daily")).one()
        dataset.fingerprint = "0" * 64

    def row() -> tuple[object, ...]:
        with lab.store.session() as session:
            stored = session.get(TradingRun, run.id)
            assert stored is not None
            return (stored.status, stored.worker, stored.attempt, stored.steps_done)

    before = row()
    with pytest.raises(RunStateError, match=f"run {run.id}: the us 1d data changed"):
        lab.run(run.id).resume()
    with pytest.raises(ReplayError, match=f"run {run.id} has no recorded LLM calls"):
        lab.run(run.id).replay()
    assert row() == before == ("failed", None, 0, 5)
    assert len(lab.runs()) == 1


def test_crypto_trades_fractional_quantities(lab: Lab) -> None:
    model = lab.models.create(
        "coins",
        ai_model_id="baseline/buy_and_hold",
        market="crypto",
        tickers=["BTC-USDT", "ETH-USDT"],
        initial_cash=50_000.0,
    )
    run = lab.start_run(model, start="2025-11-01", end="2025-11-15", costs="zero")
    assert run.wait(60) == "completed"
    fills = run.ledger().query("status == 'filled'")
    assert set(fills["symbol"]) == {"BTC-USDT", "ETH-USDT"}
    assert any(q != int(q) for q in fills["quantity"])
    assert run.equity()["cash"].iloc[-1] < 1.0  # fractional units spend (almost) all the cash


def test_a_share_run_uses_whole_shares_and_excludes_the_index(lab: Lab) -> None:
    model = lab.models.create(
        "sse", ai_model_id="baseline/momentum", market="cn", initial_cash=1_000_000.0
    )
    run = lab.start_run(model, start="2025-07-01", end="2025-09-30")
    assert run.wait(60) == "completed"
    fills = run.ledger().query("status == 'filled'")
    assert len(fills) > 0 and all(q == int(q) for q in fills["quantity"])
    assert "000016.SH" not in set(run.info.snapshot.tickers)


def test_a_chat_run_works_where_an_event_loop_is_already_running(lab: Lab) -> None:
    """In a notebook the kernel's loop runs in the main thread; a blocking chat run there
    used to fail with 'Cannot run the event loop while another loop is running'."""
    import asyncio

    model = lab.models.create("in a notebook", ai_model_id="baseline/momentum")

    async def notebook_cell() -> str:
        run = lab.start_run(model, start="2025-07-01", end="2025-07-15", background=False)
        return str(run.info.status) + str(run.info.error or "")

    assert asyncio.run(notebook_cell()) == "completed"
