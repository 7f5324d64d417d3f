"""The LLM path end to end: the real langchain-openai client against our own
OpenAI-compatible server on 127.0.0.1, MCP tools in memory, gate, ledger, reasoning,
recorded calls, faults, and replay with the network closed."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import delete, select
from support.openai_server import ChatRequest, Fault, OpenAIStubServer, Reply, Text, ToolCalls

from ttg_lab.errors import ConfigError
from ttg_lab.lab import Lab
from ttg_lab.llm.catalog import load_catalog
from ttg_lab.store.schema import AgentLog, LLMCall, TradingRun

KEY_ENV = "TTG_TEST_LLM_KEY"
KEY = "sk-test-0123456789abcdef"
LEDGER = [
    "step_index",
    "ts",
    "action",
    "symbol",
    "quantity",
    "fill_price",
    "fees",
    "cash_after",
    "order_id",
    "status",
    "reason",
]
SAME = [c for c in LEDGER if c != "order_id"]
"""What two runs of the same answers share (order ids follow the provider's call ids)."""


def step_day(request: ChatRequest) -> str:
    """The simulated day of a request (from the step's opening message)."""
    opening = next(m for m in request.messages if m["role"] == "user")
    found = re.search(r"\d{4}-\d{2}-\d{2}", str(opening["content"]))
    assert found
    return found.group(0)


def tool_answers(request: ChatRequest) -> list[dict[str, Any]]:
    return [m for m in request.messages if m["role"] == "tool"]


def trader(
    surprises: dict[str, list[Reply]] | None = None, faults: dict[int, Reply] | None = None
) -> Callable[[ChatRequest], Reply]:
    """Each step: look up AAPL's price, buy 2 AAPL, then finish. ``surprises`` replace the
    first replies of a given day; ``faults`` replace given call numbers (HTTP level)."""
    surprises = {day: list(replies) for day, replies in (surprises or {}).items()}
    faults = dict(faults or {})

    def respond(request: ChatRequest) -> Reply:
        if request.call_number in faults:
            return faults.pop(request.call_number)
        day = step_day(request)
        if surprises.get(day):
            return surprises[day].pop(0)
        answered = len(tool_answers(request))
        if answered == 0:
            return ToolCalls(
                [("get_price_local", {"symbol": "AAPL"})],
                content="PLAN: check AAPL, buy a little every day.",
            )
        if answered == 1:
            return ToolCalls(
                [("buy", {"symbol": "AAPL", "quantity": 2})],
                content="ANALYSIS: AAPL opened; buying 2.",
            )
        return Text(
            "DECISION: bought 2 AAPL.\nREFLECTION: steady accumulation.\n<FINISH_SIGNAL>",
            prompt_tokens=1000,
            completion_tokens=50,
        )

    return respond


def llm_model(lab: Lab, server: OpenAIStubServer, name: str = "gpt trader", **params: Any) -> Any:
    return lab.models.create(
        name,
        ai_model_id="openai/gpt-5",
        tickers=["AAPL", "MSFT", "NVDA"],
        initial_cash=10_000.0,
        parameters={
            "base_url": server.base_url,
            "api_key_env": KEY_ENV,
            "max_retries": 2,
            "timeout": 1.0,
            "retry_delay": 0.01,
            **params,
        },
    )


@pytest.fixture()
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def test_an_llm_trades_through_the_tools_with_tokens_cost_and_reasoning(
    lab: Lab, openai_stub: OpenAIStubServer, key: str
) -> None:
    openai_stub.reset(trader())
    model = llm_model(lab, openai_stub, temperature=0.2, max_tokens=400, top_p=0.9)
    run = lab.start_run(model, start="2025-07-01", end="2025-07-09", costs="zero")
    assert run.wait(120) == "completed", run.info.error
    info = run.info

    fills = run.ledger().query("status == 'filled'")
    assert len(fills) == info.steps_total == 6
    assert set(fills["action"]) == {"buy"} and set(fills["quantity"]) == {2.0}
    assert fills["order_id"].is_unique

    with lab.store.session() as session:
        calls = session.scalars(select(LLMCall).where(LLMCall.run_id == run.id)).all()
    assert len(calls) == 18 and {c.status for c in calls} == {"ok"}
    price = load_catalog().get("openai/gpt-5")
    assert price is not None
    expected = sum(price.cost(c.prompt_tokens, c.completion_tokens) for c in calls)
    with lab.store.session() as session:
        from ttg_lab.store.schema import TradingRun

        row = session.get(TradingRun, run.id)
        assert row is not None
        assert row.llm_calls == 18
        assert row.prompt_tokens == sum(c.prompt_tokens for c in calls) > 6 * 1000
        assert row.llm_cost == pytest.approx(expected) and row.llm_cost > 0
    assert all(c.latency_ms > 0 and len(c.request_fingerprint) == 64 for c in calls)

    # the model parameters were applied, and it saw the prompt with the clock, cash and prices
    first = openai_stub.requests[0]
    assert first.model == "openai/gpt-5" and first.temperature == 0.2 and first.top_p == 0.9
    assert 400 in (first.max_tokens, first.max_completion_tokens)
    assert first.messages[0]["role"] == "system" and "2025-07-01" in first.messages[0]["content"]
    assert (
        "AAPL:" in first.messages[0]["content"] and "Cash: 10000.00" in first.messages[0]["content"]
    )
    assert set(first.tool_names) >= {"buy", "sell", "get_price_local", "get_information", "add"}

    reasoning = run.reasoning()
    assert {"plan", "analysis", "decision", "reflection"} <= set(reasoning["type"])
    decisions = reasoning[reasoning["type"] == "decision"]
    assert all(len(ids) == 1 for ids in decisions["order_ids"])
    assert set(fills["order_id"]) == {i for ids in decisions["order_ids"] for i in ids}
    assert any("AAPL@" in str(k) for c in decisions["context"] for k in c["prices"])


def test_the_run_survives_every_llm_fault_and_nothing_doubles(
    lab: Lab, openai_stub: OpenAIStubServer, key: str
) -> None:
    surprises: dict[str, list[Reply]] = {
        "2025-07-02": [ToolCalls([("hack_the_bank", {"amount": 1e9})])],  # unknown tool
        "2025-07-03": [ToolCalls([("get_price_local", {"symbol": "AAPL", "date": "2025-12-31"})])],
        "2025-07-07": [
            ToolCalls([("get_price_local", {"symbol": "AAPL"})]),
            ToolCalls([("buy", '{"symbol": "AAPL", "quantity": ')]),
        ],  # bad JSON
        "2025-07-08": [
            ToolCalls([("get_price_local", {"symbol": "ZZZZ"})]),
            ToolCalls([("buy", {"symbol": "AAPL", "quantity": 1e12})]),
        ],
    }
    faults: dict[int, Reply] = {
        2: Fault("status", status=429, retry_after=0.01),
        5: Fault("status", status=500),
        8: Fault("delay", seconds=3.0),  # the client times out after 1 s and retries
        11: Fault("garbage"),
        12: Fault("status", status=503),
    }
    openai_stub.reset(trader(surprises, faults))
    model = llm_model(lab, openai_stub)
    run = lab.start_run(model, start="2025-07-01", end="2025-07-09", costs="zero")
    assert run.wait(180) == "completed", run.info.error

    ledger = run.ledger()
    fills = ledger.query("status == 'filled'")
    assert ledger["order_id"].is_unique
    # every day buys 2 AAPL once, except the bad-JSON day (no order) and the absurd day
    assert sorted(fills["ts"].dt.strftime("%m-%d")) == ["07-01", "07-02", "07-03", "07-09"]
    refused = ledger.query("status == 'rejected'")
    assert list(refused["reason"]) == ["quantity 1e+12 AAPL is absurd (limit 1e+09 AAPL)"]
    assert (ledger.query("action == 'no_trade'")["ts"].dt.strftime("%m-%d")).tolist() == ["07-07"]

    with lab.store.session() as session:
        logs = {
            row.step_index: row.messages
            for row in session.scalars(select(AgentLog).where(AgentLog.run_id == run.id))
        }
        statuses = [
            c.status for c in session.scalars(select(LLMCall).where(LLMCall.run_id == run.id))
        ]
    told = {
        step: [m["content"] for m in msgs if m.get("status") == "error"]
        for step, msgs in logs.items()
    }
    assert any("hack_the_bank is not a valid tool" in t for t in told[1])
    assert any("look-ahead refused" in t for t in told[2])
    assert any("malformed" in t for t in told[3])
    assert any("unknown symbol 'ZZZZ'" in t for t in told[4])
    assert "error" in statuses  # the garbage answer was recorded as a failed call, then retried


def test_replay_gives_the_same_ledger_with_the_network_closed(
    lab: Lab, openai_stub: OpenAIStubServer, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    openai_stub.reset(
        trader({"2025-07-03": [ToolCalls([("sell", {"symbol": "AAPL", "quantity": 1})])]})
    )
    model = llm_model(lab, openai_stub, name="recorded")
    original = lab.start_run(model, start="2025-07-01", end="2025-07-08")
    assert original.wait(120) == "completed"
    openai_stub.stop()  # the network is gone
    monkeypatch.delenv(KEY_ENV)  # and so is the key

    replay = lab.run(original.id).replay()
    assert replay.wait(120) == "completed", replay.info.error
    pd.testing.assert_frame_equal(original.ledger()[LEDGER], replay.ledger()[LEDGER])
    assert replay.info.snapshot.replay_of == original.id
    with lab.store.session() as session:
        replayed = session.scalars(select(LLMCall).where(LLMCall.run_id == replay.id)).all()
    assert (
        replayed
        and {c.status for c in replayed} == {"replayed"}
        and sum(c.cost for c in replayed) == 0
    )

    # a call missing from the record stops the replay with a clear reason, never a live call
    with lab.store.session() as session:
        session.execute(
            delete(LLMCall).where(LLMCall.run_id == original.id, LLMCall.step_index == 2)
        )
    broken = lab.run(original.id).replay()
    assert broken.wait(120) == "failed"
    assert "ReplayError: no recorded LLM call for step 2, call 1" in broken.info.error


def test_the_key_never_reaches_the_store(lab: Lab, openai_stub: OpenAIStubServer, key: str) -> None:
    openai_stub.reset(trader(faults={1: Fault("status", status=401, message=f"bad key {KEY}")}))
    model = llm_model(lab, openai_stub, name="leaky", max_retries=0)
    run = lab.start_run(model, start="2025-07-01", end="2025-07-02")
    assert run.wait(60) == "failed"
    assert KEY not in str(run.info)
    with lab.store.engine.connect() as conn:
        for table in ("llm_calls", "trading_runs", "agent_logs", "models"):
            dump = str(conn.exec_driver_sql(f"SELECT * FROM {table}").fetchall())
            assert KEY not in dump and KEY[:8] + "01" not in dump, table


def test_a_model_without_its_api_key_is_refused_before_anything_is_written(
    lab: Lab, openai_stub: OpenAIStubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = llm_model(lab, openai_stub, name="keyless", max_retries=0)
    missing = f"openai/gpt-5 needs an API key: set the environment variable {KEY_ENV}"
    with pytest.raises(ConfigError, match=missing):
        lab.start_run(model, start="2025-07-01", end="2025-07-09")
    assert lab.runs().table().empty  # no phantom "running 0/6" run

    monkeypatch.setenv(KEY_ENV, KEY)  # a run that failed, resumed without the key
    openai_stub.reset(trader(faults={4: Fault("status", status=401)}))
    run = lab.start_run(model, start="2025-07-01", end="2025-07-09", costs="zero")
    assert run.wait(60) == "failed"
    before = run.info
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match=missing):
        lab.run(run.id).resume()
    assert run.info == before and len(lab.runs()) == 1


def test_calls_of_steps_lost_before_a_resume_are_wasted_not_the_runs(
    lab: Lab, openai_stub: OpenAIStubServer, key: str
) -> None:
    """Step 3 fails on its third model call and is done again after the resume: its
    first three calls are kept as wasted spend; the run's own calls, tokens and cost
    equal an uninterrupted run's, and its replay reads exactly those."""
    model = llm_model(lab, openai_stub, name="lossy", max_retries=0)
    openai_stub.reset(trader())
    reference = lab.start_run(model, start="2025-07-01", end="2025-07-09", costs="zero")
    assert reference.wait(120) == "completed", reference.info.error

    openai_stub.reset(trader(faults={12: Fault("status", status=401)}))  # step 3, third call
    run = lab.start_run(model, start="2025-07-01", end="2025-07-09", costs="zero")
    assert run.wait(120) == "failed" and "step 3" in run.info.error
    with lab.store.session() as session:
        lost = session.scalars(
            select(LLMCall).where(LLMCall.run_id == run.id, LLMCall.step_index == 3)
        ).all()
    assert [c.status for c in lost] == ["ok", "ok", "error"]
    resumed = lab.run(run.id).resume()
    assert resumed.wait(120) == "completed", resumed.info.error

    with lab.store.session() as session:
        mine, theirs = (session.get(TradingRun, r.id) for r in (run, reference))
    assert mine is not None and theirs is not None
    assert mine.llm_calls == theirs.llm_calls == 18  # not 21: the lost calls are not the run's
    assert (mine.prompt_tokens, mine.completion_tokens) == (
        theirs.prompt_tokens,
        theirs.completion_tokens,
    )
    assert mine.llm_cost == pytest.approx(theirs.llm_cost) and mine.llm_cost > 0
    info = resumed.info
    assert info.wasted_llm_calls == 3
    assert info.wasted_llm_cost == pytest.approx(sum(c.cost for c in lost))
    assert info.wasted_llm_cost > 0
    assert info.total_llm_cost == pytest.approx(info.llm_cost + info.wasted_llm_cost)
    assert mine.wasted_prompt_tokens == sum(c.prompt_tokens for c in lost) > 0
    assert mine.wasted_completion_tokens == sum(c.completion_tokens for c in lost)
    assert resumed.metrics()["llm_cost"] == pytest.approx(reference.metrics()["llm_cost"])
    pd.testing.assert_frame_equal(resumed.ledger()[SAME], reference.ledger()[SAME])

    openai_stub.stop()
    replay = lab.run(run.id).replay()
    assert replay.wait(120) == "completed", replay.info.error
    pd.testing.assert_frame_equal(replay.ledger()[SAME], resumed.ledger()[SAME])
    assert replay.info.llm_calls == 18 and replay.info.wasted_llm_calls == 0
