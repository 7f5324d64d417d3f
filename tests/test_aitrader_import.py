"""Importing AI-Trader's published runs: rows, equity curve, reasoning, idempotence, errors.

The fixture is a real excerpt (``tests/fixtures/aitrader``, see its SOURCES.md); broken
variants are made from it in ``tmp_path``. Expected values are recomputed here from the
fixture file and the stored prices, not taken from the importer.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import event, func, select

from ttg_lab.cli import main
from ttg_lab.errors import DataFileError
from ttg_lab.importers import aitrader
from ttg_lab.importers.aitrader import find_model_folders, import_aitrader, import_sources
from ttg_lab.importers.shipped_runs import build_shipped_runs, read_shipped_runs
from ttg_lab.lab import Lab
from ttg_lab.store.schema import (
    AgentLog,
    LedgerEntry,
    ReasoningEntry,
    RunStep,
    StockPrice,
    TradingModel,
    TradingRun,
)

FIXTURES = Path(__file__).parent / "fixtures" / "aitrader"
MODEL_DIR = FIXTURES / "agent_data_crypto" / "gpt-5"
POSITION = MODEL_DIR / "position" / "position.jsonl"
SIGNATURE = "aitrader-gpt-5-crypto-daily"
DAYS = [datetime(2025, 11, d) for d in range(1, 7)]


def file_lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in POSITION.read_text(encoding="utf-8").splitlines()]


def prices(lab: Lab, field: str) -> dict[tuple[str, datetime], float]:
    """Stored crypto daily bars of the fixture's days: (symbol, day) -> field."""
    with lab.store.session() as session:
        rows = session.execute(
            select(StockPrice.symbol, StockPrice.ts, getattr(StockPrice, field)).where(
                StockPrice.market == "crypto",
                StockPrice.interval == "1d",
                StockPrice.ts >= DAYS[0],
                StockPrice.ts <= DAYS[-1],
            )
        ).all()
    return {(symbol, ts): float(value) for symbol, ts, value in rows}


def counts(lab: Lab) -> dict[str, int]:
    with lab.store.session() as session:
        return {
            t.__tablename__: int(session.scalar(select(func.count()).select_from(t)) or 0)
            for t in (TradingModel, TradingRun, LedgerEntry, RunStep, AgentLog, ReasoningEntry)
        }


def broken_copy(tmp_path: Path, line: int, text: str) -> Path:
    """A copy of the fixture model folder with position line ``line`` replaced."""
    folder = tmp_path / "agent_data_crypto" / "gpt-5"
    shutil.copytree(MODEL_DIR, folder)
    path = folder / "position" / "position.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def edited(line: int, change: Any) -> str:
    data = file_lines()[line - 1]
    change(data)
    return json.dumps(data)


def test_import_creates_the_model_run_and_ledger_from_the_file(lab: Lab) -> None:
    report = import_aitrader(lab.store, MODEL_DIR, owner_id=lab.user.id)
    assert len(report) == 1 and report.problems == []
    model = lab.models.get(SIGNATURE)
    assert model.name == "AI-Trader GPT-5 (crypto daily)"
    assert (model.market, model.ai_model_id, model.owner_id) == ("crypto", "openai/gpt-5", 1)
    assert model.initial_cash == 50_000.0
    assert model.tickers == sorted(file_lines()[0]["positions"].keys() - {"CASH"})
    assert "AI-Trader" in model.description

    run = lab.run(report[0]).info
    assert (run.status, run.mode, run.run_number) == ("completed", "daily", 1)
    assert (run.start, run.end) == (DAYS[0], DAYS[-1])
    assert run.steps_done == run.steps_total == len(DAYS)

    opens = prices(lab, "open")
    ledger = lab.run(report[0]).ledger()
    assert ledger["order_id"].is_unique
    by_order = {row.order_id: row for row in ledger.itertuples()}
    lines = file_lines()
    for data in lines[1:]:
        row = by_order[f"aitrader-{data['id']}"]
        day = datetime.fromisoformat(data["date"])
        action = data["this_action"]
        positions = {s: q for s, q in data["positions"].items() if s != "CASH" and q}
        assert row.ts == day and row.step_index == DAYS.index(day)
        assert row.cash_after == data["positions"]["CASH"]
        assert row.holdings == dict(sorted(positions.items()))
        assert row.fees == 0.0
        if action["action"] == "no_trade":
            assert (row.action, row.status, row.quantity) == ("no_trade", "none", 0.0)
            assert pd.isna(row.symbol) and pd.isna(row.fill_price)
        else:
            assert row.action == action["action"].removesuffix("_crypto")
            assert (row.symbol, row.quantity, row.status) == (
                action["symbol"],
                action["amount"],
                "filled",
            )
            assert row.fill_price == opens[(action["symbol"], day)]
    assert list(ledger["action"].value_counts().sort_index().items()) == [
        ("buy", 15),
        ("no_trade", 2),  # the file's 2025-11-05 line and the initial day (no line)
        ("sell", 1),
    ]
    initial_day = ledger[ledger["step_index"] == 0].iloc[0]
    assert initial_day["order_id"] == "aitrader-none-s0" and initial_day["cash_after"] == 50_000
    assert run.total_trades == 16
    assert list(ledger["step_index"]) == sorted(ledger["step_index"])


def test_the_equity_curve_has_every_bar_marked_at_its_close(lab: Lab) -> None:
    [run_id] = import_aitrader(lab.store, MODEL_DIR, owner_id=lab.user.id)
    closes = prices(lab, "close")
    lines = file_lines()
    equity = lab.run(run_id).equity()
    assert list(equity["ts"]) == DAYS
    for row in equity.itertuples():
        book = [d for d in lines if datetime.fromisoformat(d["date"]) <= row.ts][-1]
        cash = book["positions"]["CASH"]
        held = {s: q for s, q in book["positions"].items() if s != "CASH" and q}
        assert row.cash == cash and row.holdings == dict(sorted(held.items()))
        expected = cash + sum(q * closes[(s, row.ts)] for s, q in held.items())
        assert row.equity == pytest.approx(expected, rel=1e-12)
    info = lab.run(run_id).info
    assert info.final_value == equity["equity"].iloc[-1]
    assert info.final_return == pytest.approx(equity["equity"].iloc[-1] / 50_000 - 1)
    assert info.max_drawdown <= 0


def test_reasoning_and_logs_are_typed_and_linked_to_the_orders(lab: Lab) -> None:
    [run_id] = import_aitrader(lab.store, MODEL_DIR, owner_id=lab.user.id)
    with lab.store.session() as session:
        logs = session.scalars(select(AgentLog).where(AgentLog.run_id == run_id)).all()
        assert [(log.step_index, log.ts) for log in logs] == [(1, DAYS[1]), (5, DAYS[5])]
        assert logs[1].messages[0]["role"] == "user"
        assert "Tool results" in logs[1].messages[2]["content"]
    reasoning = lab.run(run_id).reasoning()
    nov6 = reasoning[reasoning["step_index"] == 5]
    assert list(nov6["type"]) == ["analysis", "decision"]  # the echoed prompt, then the answer
    decision = nov6.iloc[-1]
    assert decision["order_ids"] == ["aitrader-15", "aitrader-16", "aitrader-17"]
    assert decision["context"] == {
        "source": "aitrader",
        "log_file": "agent_data_crypto/gpt-5/log/2025-11-06/log.jsonl",
        "line": 4,
        "clock": "2025-11-06",
        "signature": "gpt-5",
    }
    assert "Key intermediate steps" in decision["content"]
    nov2 = reasoning[(reasoning["step_index"] == 1) & (reasoning["type"] == "decision")]
    assert nov2.iloc[0]["order_ids"] == [f"aitrader-{i}" for i in range(1, 10)]
    assert all(ids == [] for ids in reasoning[reasoning["type"] != "decision"]["order_ids"])


def test_the_snapshot_marks_the_import(lab: Lab) -> None:
    [run_id] = import_aitrader(lab.store, MODEL_DIR, owner_id=lab.user.id)
    snap = lab.run(run_id).info.snapshot.to_json()
    files = {
        p.relative_to(MODEL_DIR).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in MODEL_DIR.rglob("*.jsonl")
    }
    assert snap["imported_from"] == "aitrader"
    assert snap["source_path"] == "agent_data_crypto/gpt-5"
    assert snap["source_files"] == files
    assert snap["model"]["signature"] == SIGNATURE and snap["model"]["initial_cash"] == 50_000
    assert (snap["agent_path"], snap["fill"], snap["rules"], snap["prompt_version"]) == (
        "imported",
        "open",
        [],
        None,
    )
    assert set(snap["costs"].values()) == {0.0}
    assert snap["interval"] == "1d" and len(snap["data_fingerprint"]) == 64
    assert snap["reconciliation"]["trades_without_our_price"] == 0
    # AI-Trader's cash is ours to 4 decimals: it priced at the same open, rounded cash.
    assert snap["reconciliation"]["max_cash_drift"] < 1e-3


def test_reimport_is_a_no_op(lab: Lab) -> None:
    first = import_aitrader(lab.store, MODEL_DIR, owner_id=lab.user.id)
    before = counts(lab)
    again = import_aitrader(lab.store, FIXTURES, owner_id=lab.user.id)  # found from the top
    assert again == [] and counts(lab) == before
    assert [(r.status, r.run_id) for r in again.results] == [("skipped", first[0])]


def test_an_import_that_loses_the_race_for_a_run_number_takes_the_next_one(lab: Lab) -> None:
    """Another process numbers a run of the same model between the import's read of the
    last number and its insert: the import is written again with the number after (as a
    started run is), not refused with the store's unique-number error."""
    [first] = import_aitrader(lab.store, MODEL_DIR, owner_id=lab.user.id)
    with lab.store.session() as session:
        run = session.get(TradingRun, first)
        assert run is not None
        run.strategy_snapshot = {**run.strategy_snapshot, "source_files": {}}  # import anew
        model_id, period = run.model_id, (run.period_start, run.period_end)
    raced: list[int] = []

    def another_process_numbers_a_run(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if raced or "max(trading_runs.run_number)" not in statement:
            return
        raced.append(2)
        with lab.store.session() as other:  # its own connection, committed at once
            other.add(
                TradingRun(
                    model_id=model_id,
                    run_number=2,
                    status="completed",
                    mode="daily",
                    period_start=period[0],
                    period_end=period[1],
                )
            )

    event.listen(lab.store.engine, "after_cursor_execute", another_process_numbers_a_run)
    try:
        [second] = import_aitrader(lab.store, MODEL_DIR, owner_id=lab.user.id)
    finally:
        event.remove(lab.store.engine, "after_cursor_execute", another_process_numbers_a_run)
    assert raced == [2]
    with lab.store.session() as session:
        numbers = session.execute(
            select(TradingRun.id, TradingRun.run_number)
            .where(TradingRun.model_id == model_id)
            .order_by(TradingRun.run_number)
        ).all()
        rows = session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.run_id == second)
        )
        first_rows = session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.run_id == first)
        )
    assert [n for _, n in numbers] == [1, 2, 3] and numbers[2][0] == second
    assert rows == first_rows  # booked once, whole


def test_model_folders_are_found_at_any_level() -> None:
    for path in (MODEL_DIR, MODEL_DIR.parent, FIXTURES):
        assert find_model_folders(path) == [MODEL_DIR]
    with pytest.raises(DataFileError, match="no AI-Trader model folder"):
        find_model_folders(MODEL_DIR / "log")


BROKEN = [
    pytest.param(5, '{"date": "2025-11-02", "id": 4, ', "not valid JSON", id="bad-json"),
    pytest.param(
        6,
        edited(6, lambda d: d["this_action"].update(action="borrow")),
        "unknown action 'borrow'",
        id="unknown-action",
    ),
    pytest.param(
        7,
        edited(7, lambda d: d["this_action"].update(amount=-3.2)),
        "negative amount -3.2",
        id="negative-amount",
    ),
    pytest.param(8, edited(8, lambda d: d.pop("positions")), "missing 'positions'", id="fields"),
]


@pytest.mark.parametrize(("line", "text", "message"), BROKEN)
def test_a_malformed_line_raises_naming_file_and_line_and_writes_nothing(
    lab: Lab, tmp_path: Path, line: int, text: str, message: str
) -> None:
    folder = broken_copy(tmp_path, line, text)
    before = counts(lab)
    with pytest.raises(DataFileError, match=message) as caught:
        import_aitrader(lab.store, folder, owner_id=lab.user.id)
    assert caught.value.line == line
    assert caught.value.path == str(folder / "position" / "position.jsonl")
    assert f"position.jsonl, line {line}:" in str(caught.value)
    assert counts(lab) == before


def test_report_mode_lists_problems_and_imports_the_rest(lab: Lab, tmp_path: Path) -> None:
    folder = broken_copy(tmp_path, 7, edited(7, lambda d: d["this_action"].update(amount=-1)))
    log = folder / "log" / "2025-11-02" / "log.jsonl"
    log.write_text(log.read_text(encoding="utf-8") + "not json\n", encoding="utf-8")
    report = import_aitrader(lab.store, folder, owner_id=lab.user.id, on_error="report")
    assert [(Path(p.path).name, p.line) for p in report.problems] == [
        ("position.jsonl", 7),
        ("log.jsonl", 3),
    ]
    assert "negative amount" in str(report.problems[0])
    [run_id] = report
    ledger = lab.run(run_id).ledger()
    assert "aitrader-6" not in set(ledger["order_id"])  # line 7 holds id 6
    assert {"aitrader-5", "aitrader-7"} <= set(ledger["order_id"])
    assert report.results[0].problems == report.problems


def test_a_failure_while_writing_leaves_nothing_half_imported(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(aitrader.book, "_log_rows", boom)
    before = counts(lab)
    with pytest.raises(RuntimeError, match="disk full"):
        import_aitrader(lab.store, MODEL_DIR, owner_id=lab.user.id)
    assert counts(lab) == before


def test_the_compact_file_imports_through_the_same_path(lab: Lab, tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl.gz"
    figures = build_shipped_runs(FIXTURES, out, limit=1000)
    assert figures["models"] == 1 and figures["position_lines"] == 18
    assert figures["messages_trimmed"] == 3  # the two answers and the pasted tool result
    assert build_shipped_runs(FIXTURES, tmp_path / "again.gz", limit=1000)["bytes"] == (
        out.stat().st_size
    )
    assert (tmp_path / "again.gz").read_bytes() == out.read_bytes()  # reproducible
    [source] = read_shipped_runs(out)
    assert source.trimmed == {
        "messages": 3,
        "characters": figures["characters_trimmed"],
        "limit": 1000,
    }
    [run_id] = import_sources(lab.store, [source], owner_id=lab.user.id, origin="shipped")
    snap = lab.run(run_id).info.snapshot.to_json()
    assert snap["source"] == "shipped" and snap["trimmed_copy"]["messages"] == 3
    assert (
        "characters cut in ttg-lab's shipped copy" in lab.run(run_id).reasoning()["content"].iloc[0]
    )
    # The compact copy carries the original files' hashes: the real folder is a no-op now.
    assert import_aitrader(lab.store, MODEL_DIR, owner_id=lab.user.id) == []
    # Imported under another name, the folder gives the same ledger and curve.
    [folder_run] = import_aitrader(lab.store, MODEL_DIR, owner_id=lab.user.id, name_suffix=" b")
    assert lab.models.get("aitrader-gpt-5-crypto-daily-b").name.endswith("(crypto daily) b")
    for read in ("ledger", "equity"):
        shipped = getattr(lab.run(run_id), read)()
        folder = getattr(lab.run(folder_run), read)()
        pd.testing.assert_frame_equal(shipped, folder)
        assert len(shipped) == (18 if read == "ledger" else 6)


def test_selling_what_is_not_held_is_a_short_and_buying_it_back_a_cover(
    lab: Lab, tmp_path: Path
) -> None:
    folder = tmp_path / "agent_data_crypto" / "gpt-5"
    shutil.copytree(MODEL_DIR, folder)
    last = file_lines()[-1]
    price = prices(lab, "open")[("XRP-USDT", DAYS[-1])]
    short = json.loads(json.dumps(last))
    short.update(id=18, this_action={"action": "sell_crypto", "symbol": "XRP-USDT", "amount": 10})
    short["positions"].update({"XRP-USDT": -10.0, "CASH": last["positions"]["CASH"] + 10 * price})
    cover = json.loads(json.dumps(last))
    cover.update(id=19, this_action={"action": "buy_crypto", "symbol": "XRP-USDT", "amount": 10})
    path = folder / "position" / "position.jsonl"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(short) + "\n" + json.dumps(cover) + "\n")
    [run_id] = import_aitrader(lab.store, folder, owner_id=lab.user.id)
    ledger = lab.run(run_id).ledger().set_index("order_id")
    assert ledger.loc["aitrader-18", "action"] == "short"
    assert ledger.loc["aitrader-19", "action"] == "cover"
    assert ledger.loc["aitrader-18", "holdings"]["XRP-USDT"] == -10.0


def test_cli_import_prints_a_line_per_model(db_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--db", db_url, "import", "aitrader", str(FIXTURES)])
    assert result.exit_code == 0, result.output
    assert "run 1: aitrader-gpt-5-crypto-daily: 6 bars, 16 trades, final value" in result.output
    again = runner.invoke(main, ["--db", db_url, "import", "aitrader", str(MODEL_DIR)])
    assert "already imported" in again.output and "0 run(s) imported" in again.output


def test_load_shipped_imports_every_market_once(lab: Lab) -> None:
    loaded = lab.data.load_shipped()
    assert loaded["aitrader_runs"] == 26
    runs = lab.runs().table()
    assert len(runs) == 26 and set(runs["status"]) == {"completed"}
    signatures = set(runs["model"])
    for market in ("us-hourly", "cn-daily", "cn-hourly", "crypto-daily"):
        for agent in ("gpt-5", "claude-3-7-sonnet", "deepseek-chat-v3-1", "qwen3-max"):
            assert f"aitrader-{agent}-{market}" in signatures
    assert "aitrader-glm-4-6-cn-hourly" in signatures
    assert all(m.owner_id == lab.user.id for m in lab.models.list())
    assert lab.data.load_shipped()["aitrader_runs"] == 0
    assert len(lab.runs()) == 26
