"""The LLM fault matrix: every way a model or its provider can misbehave, in one place.

Each row drives a real run (langchain-openai against our stub server on 127.0.0.1, the
MCP tools in memory, the gate, the ledger) with one fault and asserts its outcome: the
run ends within a wall-clock bound, either ``completed`` with the fault on record (an
agent log, a failed LLM call, a refused order) or ``failed`` with an error naming the
reason; the ledger reconciles with its fills; a failed run resumes to completion.

Absurd orders share one run: one model answer places all of them (and one sane order).
"""

from __future__ import annotations

import math
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select
from support.openai_server import ChatRequest, Fault, OpenAIStubServer, Reply, Text, ToolCalls

import ttg_lab
from ttg_lab import Run, RunInfo
from ttg_lab.lab import Lab
from ttg_lab.market.cache import data_fingerprint, price_index
from ttg_lab.store.schema import AgentLog, GateDecisionRow, LLMCall

KEY_ENV = "TTG_TEST_LLM_KEY"
CASH = 10_000.0
DAY = "2025-07-01"
Responder = Callable[[ChatRequest], Reply]

# ------------------------------------------------------------------------- the models


def turn(request: ChatRequest) -> int:
    """How many answers the model already gave in this step's conversation."""
    return sum(1 for m in request.messages if m["role"] == "assistant")


def healthy(position: int) -> Reply:
    """A sane model: look up AAPL, buy 2, finish."""
    if position == 0:
        return ToolCalls([("get_price_local", {"symbol": "AAPL"})], content="PLAN: buy AAPL.")
    if position == 1:
        return ToolCalls([("buy", {"symbol": "AAPL", "quantity": 2})], content="ANALYSIS: buy 2.")
    return Text("DECISION: bought 2 AAPL.\nREFLECTION: fine.\n<FINISH_SIGNAL>")


def opens_with(*replies: Reply) -> Responder:
    """Every step opens with ``replies`` (one per model answer), then trades sanely."""

    def respond(request: ChatRequest) -> Reply:
        position = turn(request)
        if position < len(replies):
            return replies[position]
        return healthy(position - len(replies))

    return respond


def http_fault(fault: Fault, calls: int | None) -> Responder:
    """The first ``calls`` HTTP requests (all of them when None) get ``fault``."""

    def respond(request: ChatRequest) -> Reply:
        if calls is None or request.call_number <= calls:
            return fault
        return healthy(turn(request))

    return respond


def forever(reply: Reply) -> Responder:
    """A model stuck on one answer."""
    return lambda _request: reply


def status(code: int) -> Fault:
    """An HTTP error the server asks to retry soon (keeps the client's backoff short)."""
    return Fault("status", status=code, retry_after=0.01)


# -------------------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class Row:
    """One fault and the outcome it must end in."""

    responder: Responder
    status: str  # completed | failed
    evidence: str  # regex: the failed run's error, or found in what a completed run kept
    fills: int | None = None  # filled orders expected in the whole run (None: any)
    params: dict[str, Any] = field(default_factory=dict)
    end: str = DAY
    within: float = 20.0  # wall-clock seconds the run may take


def completes(
    responder: Responder,
    evidence: str,
    fills: int = 1,
    params: dict[str, Any] | None = None,
    end: str = DAY,
) -> Row:
    """The run completes, the fault on record, with ``fills`` orders filled."""
    return Row(responder, "completed", evidence, fills, params or {}, end)


def fails(
    responder: Responder, error: str, params: dict[str, Any] | None = None, within: float = 20
) -> Row:
    """The run fails with an error matching ``error``, leaving no trace of its step."""
    return Row(responder, "failed", error, 0, params or {}, within=within)


def dies_after(calls: int, fault: Fault) -> Responder:
    """A sane model whose provider fails for good after ``calls`` HTTP requests."""

    def respond(request: ChatRequest) -> Reply:
        return fault if request.call_number > calls else healthy(turn(request))

    return respond


RAW = {"max_retries": 0}  # the SDK does not retry: every failed call reaches our recorder
STALL = {"timeout": 1.0, "max_retries": 0}
LOOP = {"max_steps": 3}
STEP_LIMIT = {"timeout": 30.0, "max_retries": 0, "step_timeout": 1.0}
NO_ANSWER = r"ModelCallError: openai/gpt-5 gave no usable answer \(after 2 retries\): \w*"
RATE_LIMITED = r"RateLimitedError: openai/gpt-5 is rate limited: "
CALL_LIMIT = r"Model call limits exceeded: run limit \(3/3\)"
TIME_LIMIT = r"StepTimeoutError: decision step exceeded its time limit of 1 s"
FINISH = Text("DECISION: done.\n<FINISH_SIGNAL>")
UNKNOWN_TOOL = ToolCalls([("hack_the_bank", {"amount": 1e9})])
TRUNCATED_ARGS = ToolCalls([("buy", '{"symbol": "AAPL", "qu')])
PRICE = ToolCalls([("get_price_local", {"symbol": "AAPL"})])
BUY_1 = ToolCalls([("buy", {"symbol": "AAPL", "quantity": 1})])

MATRIX: dict[str, Row] = {
    # the provider stalls, throttles, errs or answers what is not a completion
    "timeout once": completes(
        http_fault(Fault("delay", seconds=3.0), 1), r"TimeoutError: Request timed out", 1, STALL
    ),
    "timeout always": fails(
        http_fault(Fault("delay", seconds=5.0), None),
        NO_ANSWER + r"TimeoutError: Request timed out",
        STALL,
        within=10,
    ),
    "429 storm passes": completes(
        http_fault(status(429), 5), r"retried after HTTP 429", params={"max_retries": 5}
    ),
    "429 storm never ends": fails(
        http_fault(status(429), None), RATE_LIMITED + r"HTTP 429 to all 3 attempts"
    ),
    "500 twice": completes(http_fault(status(500), 2), r"Error code: 500", 1, RAW),
    "502 twice": completes(http_fault(status(502), 2), r"Error code: 502", 1, RAW),
    "503 twice": completes(http_fault(status(503), 2), r"retried after HTTP 503"),
    "500 always": fails(http_fault(status(500), None), NO_ANSWER + r": Error code: 500"),
    "502 always": fails(http_fault(status(502), None), NO_ANSWER + r": Error code: 502"),
    "503 always": fails(
        http_fault(status(503), None), RATE_LIMITED + r"HTTP 503 to all 3 attempts"
    ),
    "500 for good after a fill": fails(dies_after(2, status(500)), NO_ANSWER + r": Error code"),
    "truncated body once": completes(http_fault(Fault("truncated"), 1), r"JSONDecodeError", 1, RAW),
    "truncated body always": fails(http_fault(Fault("truncated"), None), NO_ANSWER + r"JSONDecode"),
    "invalid JSON body once": completes(
        http_fault(Fault("garbage"), 1), r"JSONDecodeError", 1, RAW
    ),
    "invalid JSON body always": fails(
        http_fault(Fault("garbage"), None), NO_ANSWER + r"JSONDecode"
    ),
    "no choices once": completes(http_fault(Fault("empty_choices"), 1), r"IndexError", 1, RAW),
    "no choices always": fails(http_fault(Fault("empty_choices"), None), NO_ANSWER + r"IndexError"),
    # the model calls tools that do not exist, with broken arguments, or without end
    "unknown tool once": completes(opens_with(UNKNOWN_TOOL), r"hack_the_bank is not a valid tool"),
    "unknown tool forever": completes(forever(UNKNOWN_TOOL), CALL_LIMIT, 0, LOOP),
    "truncated arguments once": completes(opens_with(TRUNCATED_ARGS), r"malformed"),
    "truncated arguments forever": completes(forever(TRUNCATED_ARGS), CALL_LIMIT, 0, LOOP),
    "invalid JSON arguments once": completes(
        opens_with(ToolCalls([("buy", "{symbol: AAPL, quantity: 2}")])), r"malformed"
    ),
    "bare NaN in the arguments": completes(
        opens_with(ToolCalls([("buy", '{"symbol": "AAPL", "quantity": NaN}')]), FINISH),
        r"quantity\s+Input should be a valid number",
        fills=0,
    ),
    "arguments of the wrong shape": completes(
        opens_with(
            ToolCalls([("buy", {"ticker": "AAPL"})]),
            ToolCalls([("buy", {"symbol": "AAPL", "quantity": "lots"})]),
        ),
        r"symbol\s+Missing required argument",
    ),
    "endless tool loop": completes(forever(PRICE), CALL_LIMIT, 0, LOOP, end="2025-07-02"),
    "endless buying loop": completes(forever(BUY_1), CALL_LIMIT, 3, LOOP),
    "one answer spends the cash five times": completes(
        opens_with(ToolCalls([("buy", {"symbol": "AAPL", "quantity": 20})] * 5), FINISH),
        r"insufficient cash for buy 20 AAPL",
        fills=2,
    ),
    # the per-step time limit
    "model stalls past the step limit": fails(
        forever(Fault("delay", seconds=30.0)), TIME_LIMIT, STEP_LIMIT, within=8
    ),
    "slow endless loop hits the step limit": fails(
        forever(Fault("delay", seconds=0.4, then=ToolCalls([("add", {"a": 1, "b": 1})]))),
        TIME_LIMIT,
        {**STEP_LIMIT, "max_steps": 100},
        within=8,
    ),
}

ABSURD: dict[str, tuple[dict[str, Any], str]] = {
    "negative quantity": ({"quantity": -5}, r"quantity must be positive, got -5 AAPL"),
    "zero quantity": ({"quantity": 0}, r"quantity must be positive, got 0 AAPL"),
    "NaN string": ({"quantity": "NaN"}, r"quantity must be a number, got nan"),
    "inf string": ({"quantity": "inf"}, r"quantity must be a number, got inf"),
    "-Infinity string": ({"quantity": "-Infinity"}, r"quantity must be a number, got -inf"),
    "1e15 shares": ({"quantity": 1e15}, r"quantity 1e\+15 AAPL is absurd"),
    "1e8 shares, beyond the cash": ({"quantity": 1e8}, r"insufficient cash for buy 1e\+08"),
    "fractional shares": ({"quantity": 2.5}, r"whole units only in the us market, got 2.5 AAPL"),
    "unknown symbol": ({"symbol": "ZZZZ"}, r"unknown symbol ZZZZ in the us market"),
    "symbol outside the tickers": ({"symbol": "AMZN"}, r"AMZN is not one of this model's"),
    "sell what is not held": ({"action": "sell", "symbol": "NVDA"}, r"cannot sell 1 NVDA: 0"),
    "cover what is not short": ({"action": "cover"}, r"cannot cover 1 AAPL: 0 AAPL short"),
}
"""Orders the gate must refuse: changes to ``buy 1 AAPL``, and the refusal's reason."""


# ------------------------------------------------------------------- fixtures, helpers


@pytest.fixture(scope="module")
def lab(template_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One lab for the whole matrix: every row runs its own model in it."""
    target = tmp_path_factory.mktemp("faults") / "lab.db"
    shutil.copy(template_db, target)
    lab = ttg_lab.open(f"sqlite:///{target}")
    yield lab
    lab.close()


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIStubServer]:
    with pytest.MonkeyPatch.context() as patch, OpenAIStubServer() as stub:
        patch.setenv(KEY_ENV, "sk-test-faults")
        yield stub


def start(lab: Lab, server: OpenAIStubServer, name: str, row: Row) -> Run:
    model = lab.models.create(
        name,
        ai_model_id="openai/gpt-5",
        tickers=["AAPL", "MSFT", "NVDA"],
        initial_cash=CASH,
        parameters={
            "base_url": server.base_url,
            "api_key_env": KEY_ENV,
            "max_retries": 2,
            "timeout": 2.0,
            "retry_delay": 0.01,
            **row.params,
        },
    )
    return lab.start_run(model, start=DAY, end=row.end, costs="zero")


def finish(run: Run, within: float) -> RunInfo:
    """The run's row once its thread ended, which it must within ``within`` seconds."""
    began = time.monotonic()
    run.wait(within)
    assert not run.running, f"run {run.id} still running after {within} s: a hang"
    assert time.monotonic() - began < within
    return run.info


def kept(lab: Lab, run: Run) -> str:
    """What a run kept about its troubles: agent logs, failed calls, ledger reasons."""
    texts = []
    with lab.store.session() as session:
        for log in session.scalars(select(AgentLog).where(AgentLog.run_id == run.id)):
            for message in log.messages:
                texts.append(str(message.get("content", "")))
                texts += [str(c.get("error")) for c in message.get("invalid_tool_calls") or []]
        calls = list(session.scalars(select(LLMCall).where(LLMCall.run_id == run.id)))
        texts += [c.error for c in calls if c.error]
        texts += [  # the client's retries of an answered call
            f"retried after {r['error']}"
            for c in calls
            for r in c.response.get("data", {}).get("response_metadata", {}).get("retries", [])
        ]
    texts += [str(r) for r in run.ledger()["reason"]]
    return "\n".join(texts)


def assert_consistent(lab: Lab, run: Run) -> None:
    """Recompute cash and holdings from the fills: every ledger row and every committed
    step agree with them; no order id twice; no holding below zero; equity is cash plus
    the holdings at the step's close."""
    ledger = run.ledger()
    assert ledger["order_id"].is_unique
    cash, held = CASH, dict[str, float]()
    after_step: dict[int, tuple[float, dict[str, float]]] = {}
    for row in ledger.itertuples():
        if row.status == "filled":
            sign = 1 if row.action in ("buy", "cover") else -1
            assert row.quantity > 0 and math.isfinite(row.fill_price) and row.fees >= 0
            cash -= sign * row.quantity * row.fill_price + row.fees
            held[row.symbol] = held.get(row.symbol, 0.0) + sign * row.quantity
            held = {s: q for s, q in held.items() if abs(q) > 1e-9}
        assert row.cash_after == pytest.approx(cash) and row.cash_after >= 0
        assert row.holdings == pytest.approx(held)
        assert all(q > 0 for q in held.values())
        after_step[row.step_index] = (cash, dict(held))
    index = price_index(lab.store, "us", "1d", data_fingerprint(lab.store, "us", "1d"))
    steps = run.equity()
    assert list(steps["step_index"]) == sorted(after_step)
    for step in steps.itertuples():
        cash_then, held_then = after_step[step.step_index]
        assert step.cash == pytest.approx(cash_then) and step.holdings == pytest.approx(held_then)
        when = step.ts.to_pydatetime()
        value = sum(
            q * (index.close_at_or_before(s, when) or math.nan) for s, q in held_then.items()
        )
        assert step.equity == pytest.approx(cash_then + value)


def resumes(lab: Lab, server: OpenAIStubServer, run: Run) -> None:
    """A failed run resumes to the end once the model is sane, trading once a day: the
    failed step's fills were never committed, so nothing doubles."""
    server.reset(opens_with())
    resumed = lab.run(run.id).resume()
    info = finish(resumed, 20)
    assert info.status == "completed" and info.steps_done == info.steps_total
    assert_consistent(lab, resumed)
    assert len(resumed.ledger().query("status == 'filled'")) == info.steps_total  # once a day


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("fault", list(MATRIX))
def test_llm_fault_matrix(fault: str, lab: Lab, server: OpenAIStubServer) -> None:
    row = MATRIX[fault]
    server.reset(row.responder)
    run = start(lab, server, fault, row)
    info = finish(run, row.within)
    assert info.status == row.status, info.error
    if row.status == "failed":
        assert re.search(r"^step 0 \(2025-07-01 00:00\): " + row.evidence, info.error)
        assert info.steps_done == 0 and run.ledger().empty  # the failed step left nothing
    else:
        assert info.error is None and info.steps_done == info.steps_total
        assert re.search(row.evidence, kept(lab, run)), kept(lab, run)
    assert_consistent(lab, run)
    fills = run.ledger().query("status == 'filled'")
    assert row.fills is None or len(fills) == row.fills, fills
    if row.status == "failed":
        resumes(lab, server, run)


@pytest.fixture(scope="module")
def absurd_run(lab: Lab, server: OpenAIStubServer) -> Run:
    """One answer places every absurd order, then a sane ``buy 2 AAPL``."""
    calls: list[tuple[str, dict[str, Any] | str]] = []
    for change, _reason in ABSURD.values():
        args = {"symbol": "AAPL", "quantity": 1, **change}
        calls.append((args.pop("action", "buy"), args))
    calls.append(("buy", {"symbol": "AAPL", "quantity": 2}))
    row = Row(opens_with(ToolCalls(calls), FINISH), "completed", "")
    server.reset(row.responder)
    run = start(lab, server, "absurd orders", row)
    info = finish(run, row.within)
    assert info.status == "completed", info.error
    assert_consistent(lab, run)
    return run


@pytest.mark.parametrize("absurd", list(ABSURD))
def test_absurd_orders_are_refused_on_record(absurd: str, lab: Lab, absurd_run: Run) -> None:
    """Refused by the gate: a rejected ledger row and a reject in gate_decisions with the
    reason, no fill; only the sane order of the same answer filled."""
    ledger = absurd_run.ledger().set_index("order_id")
    order_id = next(o for o in ledger.index if o.endswith(f"_{list(ABSURD).index(absurd)}"))
    row = ledger.loc[order_id]
    assert row["status"] == "rejected" and pd.isna(row["fill_price"])
    assert re.search(ABSURD[absurd][1], row["reason"]), row["reason"]
    with lab.store.session() as session:
        decision = session.scalars(
            select(GateDecisionRow).where(
                GateDecisionRow.run_id == absurd_run.id, GateDecisionRow.order_id == order_id
            )
        ).one()
        assert decision.verdict == "reject" and decision.quantity == 0
        assert decision.firings and re.search(ABSURD[absurd][1], decision.firings[0]["reason"])
    filled = ledger.query("status == 'filled'")
    assert len(filled) == 1 and filled.index[0].endswith(f"_{len(ABSURD)}")


def test_runs_one_after_another_share_no_dead_connection(
    lab: Lab, server: OpenAIStubServer
) -> None:
    """Each run's agent has an event loop of its own; the next run on the same endpoint
    must not reuse HTTP connections of the last one's closed loop."""
    server.reset(opens_with())
    row = Row(opens_with(), "completed", "")
    for name in ("first on the endpoint", "second on the endpoint"):
        run = start(lab, server, name, row)
        assert finish(run, row.within).status == "completed"
        with lab.store.session() as session:
            calls = session.scalars(select(LLMCall).where(LLMCall.run_id == run.id)).all()
        assert [(c.status, c.error) for c in calls] == [("ok", None)] * 3
