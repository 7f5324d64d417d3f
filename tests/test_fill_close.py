"""Market-on-close orders (``fill="close"``): while the agent decides, an order is only
accepted — nothing it is told, nor anything the gate sizes or checks, comes from the close;
the order fills once the step is over, the hard gates checked again at the fill price, and
the agent learns the fill at the next step (prompt, direct path, after a resume too)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from typing import Any

import pandas as pd
import pytest
from support.openai_server import ChatRequest, OpenAIStubServer, Reply, Text, ToolCalls

from ttg_lab.attribution import load_recorded, replay
from ttg_lab.broker.costs import COST_PRESETS, CostModel
from ttg_lab.broker.portfolio import Portfolio
from ttg_lab.config import resolve_settings
from ttg_lab.engine.context import RunContext
from ttg_lab.engine.ledger import REPRODUCED_COLUMNS
from ttg_lab.engine.orders import fill_at_close, place_order
from ttg_lab.engine.step import simulate_step
from ttg_lab.lab import Lab
from ttg_lab.llm.prompt import system_prompt
from ttg_lab.market.asof import PriceIndex
from ttg_lab.market.loader import read_price_frame
from ttg_lab.market.markets import get_market
from ttg_lab.market.shipped import read_shipped
from ttg_lab.mcp_services.memory import build_services, memory_session
from ttg_lab.rules.constraints import Constraint, RuleSet
from ttg_lab.rules.risk import RiskState
from ttg_lab.tools import trade

DAY = datetime(2025, 7, 15)
NEXT = datetime(2025, 7, 16)
SYMBOLS = ["AAPL", "MSFT", "NVDA"]
KEY_ENV = "TTG_TEST_LLM_KEY"


def index_with_close(factor: float) -> PriceIndex:
    """The shipped daily bars, with the closes of ``DAY`` multiplied by ``factor``."""
    frame = read_shipped("us_daily", resolve_settings().data_dir)
    frame = frame[frame["symbol"].isin(SYMBOLS)].copy()
    on_day = frame["ts"] == pd.Timestamp(DAY)
    frame.loc[on_day, "close"] *= factor
    frame.loc[on_day, "high"] = frame.loc[on_day, ["high", "close"]].max(axis=1)
    return PriceIndex(frame, "us", "1d")


def context(
    index: PriceIndex,
    cash: float = 10_000.0,
    positions: dict[str, float] | None = None,
    rules: RuleSet | None = None,
    costs: CostModel | None = None,
) -> RunContext:
    return RunContext(
        run_id=0,
        market=get_market("us"),
        index=index,
        tickers=frozenset(SYMBOLS),
        portfolio=Portfolio(cash, dict(positions or {})),
        costs=costs or COST_PRESETS["default"],
        fill="close",
        rules=rules or RuleSet(),
    )


class Scripted:
    """A direct agent that calls the trade tools with fixed orders at each step."""

    def __init__(self, orders: dict[int, list[tuple[str, str, float]]]) -> None:
        self.orders = orders
        self.answers: list[dict[str, Any]] = []

    def run_step(self, ctx: RunContext) -> None:
        for action, symbol, quantity in self.orders.get(ctx.step_index, []):
            self.answers.append(place_order(ctx, action, symbol, quantity))


def decide_over_mcp(ctx: RunContext) -> list[Any]:
    """What an agent is told while deciding on DAY: trade answers, a duplicate, the
    portfolio, over the in-memory MCP services the chat path uses."""
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("trade", "buy", {"symbol": "AAPL", "quantity": 30, "order_id": "a"}),  # cut to 10%
        ("trade", "buy", {"symbol": "MSFT", "quantity": 1000}),  # beyond the cash
        ("trade", "sell", {"symbol": "NVDA", "quantity": 5}),
        ("trade", "buy", {"symbol": "AAPL", "quantity": 30, "order_id": "a"}),  # the same
        ("trade", "get_portfolio", {}),
        ("price", "get_price_local", {"symbol": "AAPL"}),
    ]

    async def run() -> list[Any]:
        services = build_services(lambda: ctx)
        answers = []
        for service, tool, args in calls:
            async with memory_session(services[service]) as session:
                result = await session.call_tool(tool, args)
            answers.append(json.loads(result.content[0].text))  # type: ignore[union-attr]
        return answers

    ctx.advance(0, DAY)
    ctx.start_step(10_000.0)
    return asyncio.run(run())


def test_nothing_the_agent_is_told_while_deciding_depends_on_the_close() -> None:
    """The same decisions against two markets that differ only in the day's close get the
    same answers, word for word; only the fills, after the step, differ."""
    rules = RuleSet((Constraint("cap", "model", {"max_position_pct": 10}, {"symbols": ["AAPL"]}),))
    told, fills = [], []
    for factor in (1.0, 1.5):
        ctx = context(index_with_close(factor), positions={"NVDA": 10.0}, rules=rules)
        told.append(decide_over_mcp(ctx))
        fills.append(fill_at_close(ctx))
    assert told[0] == told[1]
    buy, too_big, sell, again, portfolio, _price = told[0]
    assert buy["status"] == "accepted" and buy["quantity"] < 30 and buy["requested_quantity"] == 30
    assert not {"price", "fees", "cash", "position"} & (set(buy) | set(sell))
    assert "fills" in buy and "reported at the next step" in buy["fills"]
    assert too_big["status"] == "rejected" and "insufficient cash" in too_big["reason"]
    assert again["duplicate"] is True
    assert portfolio["cash"] == 10_000.0  # nothing filled yet
    assert [o["symbol"] for o in portfolio["waiting_for_the_close"]] == ["AAPL", "NVDA"]
    assert [f.price for f in fills[0]] != [f.price for f in fills[1]]
    close = index_with_close(1.0).bar_value("AAPL", DAY, "close")
    assert fills[0][0].price == pytest.approx(COST_PRESETS["default"].fill_price("buy", close))


def test_orders_of_a_step_are_judged_with_the_ones_before_it() -> None:
    """Waiting orders count for the later ones: no selling a holding twice, no spending
    the cash twice, no more trades than the day allows."""
    rules = RuleSet((Constraint("two a day", "model", {"max_trades_per_day": 2}),))
    ctx = context(index_with_close(1.0), cash=5_000.0, positions={"NVDA": 10.0}, rules=rules)
    ctx.advance(0, DAY)
    ctx.start_step(6_700.0)
    assert trade.sell(ctx, "NVDA", 10)["status"] == "accepted"
    assert "cannot sell 10 NVDA: 0 NVDA held" in trade.sell(ctx, "NVDA", 10)["reason"]
    assert trade.buy(ctx, "AAPL", 20)["status"] == "accepted"
    assert "already 2 trades today" in trade.buy(ctx, "MSFT", 1)["reason"]
    ctx = context(index_with_close(1.0), cash=5_000.0)
    ctx.advance(0, DAY)
    ctx.start_step(5_000.0)
    assert trade.buy(ctx, "AAPL", 20)["status"] == "accepted"
    assert "insufficient cash" in trade.buy(ctx, "AAPL", 20)["reason"]


def test_the_hard_gates_cut_or_refuse_at_the_close_on_record() -> None:
    """Bought with all the cash at the open, the close is 10% higher: the buy is cut to
    what the cash pays at the close, the sell of those shares to what was bought; a buy
    the cash cannot pay at all is refused. Ledger, gate decisions and the next step's
    prompt say so."""
    index = index_with_close(1.10)
    costs = COST_PRESETS["zero"]
    opened = index.bar_value("AAPL", DAY, "open")
    closed = index.bar_value("AAPL", DAY, "close")
    assert opened is not None and closed is not None
    cash = 20 * opened
    ctx = context(index, cash=cash, costs=costs)
    agent = Scripted({0: [("buy", "AAPL", 20), ("sell", "AAPL", 20)]})
    simulate_step(ctx, agent, 0, DAY, cash)
    assert [a["status"] for a in agent.answers] == ["accepted", "accepted"]
    affordable = int(cash // closed)
    ledger = ctx.record.ledger
    assert [(r.action, r.quantity, r.status) for r in ledger] == [
        ("buy", affordable, "filled"),
        ("sell", affordable, "filled"),
    ]
    assert ledger[0].fill_price == closed
    assert f"cut to {affordable} AAPL at the close: cash" in ledger[0].reason
    assert "cut to 18 AAPL at the close: 18 AAPL held" in ledger[1].reason
    cuts = [d for d in ctx.record.decisions if d["origin"] == "close"]
    assert [(d["verdict"], d["requested"], d["quantity"]) for d in cuts] == [
        ("resize", 20, affordable),
        ("resize", 20, affordable),
    ]
    assert [f.status for f in ctx.risk.close_fills] == ["resized", "resized"]

    ctx.advance(1, NEXT)
    prompt = system_prompt(ctx, {"name": "mover"})
    assert "Your market-on-close orders of the previous step, at its close:" in prompt
    assert f"- buy 20 AAPL: filled {affordable} at {closed:.4f}" in prompt
    assert "market-on-close: they are accepted now" in prompt

    ctx = context(index_with_close(30.0), cash=cash, costs=costs)
    simulate_step(ctx, Scripted({0: [("buy", "AAPL", 20)]}), 0, DAY, cash)
    (row,) = ctx.record.ledger
    assert row.status == "rejected" and row.reason.startswith("refused at the close: cash")
    assert ctx.portfolio.cash == cash and ctx.risk.close_fills[0].status == "rejected"


def test_state_with_close_fills_survives_the_store() -> None:
    ctx = context(index_with_close(1.0))
    simulate_step(ctx, Scripted({0: [("buy", "AAPL", 2)]}), 0, DAY, 10_000.0)
    stored = json.loads(json.dumps(ctx.risk.to_dict()))
    assert RiskState.from_dict(stored) == ctx.risk
    assert RiskState.from_dict({"day": "2025-07-15"}).close_fills == []  # older states load


# ------------------------------------------------------------------------- whole runs


def step_day(request: ChatRequest) -> str:
    opening = next(m for m in request.messages if m["role"] == "user")
    found = re.search(r"\d{4}-\d{2}-\d{2}", str(opening["content"]))
    assert found
    return found.group(0)


def test_an_llm_learns_its_market_on_close_fill_at_the_next_step(
    lab: Lab, openai_stub: OpenAIStubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-close")

    def respond(request: ChatRequest) -> Reply:
        if not any(m["role"] == "tool" for m in request.messages):
            return ToolCalls([("buy", {"symbol": "AAPL", "quantity": 2})], content="PLAN: buy.")
        return Text("DECISION: bought.\n<FINISH_SIGNAL>")

    openai_stub.reset(respond)
    model = lab.models.create(
        "closer",
        ai_model_id="openai/gpt-5",
        tickers=["AAPL"],
        parameters={"base_url": openai_stub.base_url, "api_key_env": KEY_ENV, "max_retries": 0},
    )
    run = lab.start_run(model, start="2025-07-01", end="2025-07-02", costs="zero", fill="close")
    assert run.wait(120) == "completed", run.info.error
    fills = run.ledger().query("status == 'filled'")
    closes = read_price_frame(lab.store, "us", "1d", ["AAPL"]).set_index("ts")["close"]
    assert list(fills["fill_price"]) == [
        closes[pd.Timestamp("2025-07-01")],
        closes[pd.Timestamp("2025-07-02")],
    ]

    by_day: dict[str, list[ChatRequest]] = {}
    for request in openai_stub.requests:
        by_day.setdefault(step_day(request), []).append(request)
    first_close = f"{closes[pd.Timestamp('2025-07-01')]:.4f}"
    day_one = json.dumps([r.messages for r in by_day["2025-07-01"]])
    assert first_close.rstrip("0") not in day_one  # the close was never shown while deciding
    assert "accepted" in day_one and "reported at the next step" in day_one
    prompt = by_day["2025-07-02"][0].messages[0]["content"]
    assert f"- buy 2 AAPL: filled 2 at {first_close}" in prompt
    decisions = run.reasoning().query("type == 'decision'")
    assert set(fills["order_id"]) == {i for ids in decisions["order_ids"] for i in ids}


def test_replays_and_a_resumed_run_see_what_the_live_run_saw(lab: Lab) -> None:
    """Attribution's replay of a market-on-close run makes the live run's decisions and
    ends at its value; a run stopped and resumed reports the last close's fills in its
    next prompt exactly as the uninterrupted run did."""
    model = lab.models.create(
        "moc",
        ai_model_id="baseline/momentum",
        tickers=["AAPL", "MSFT", "NVDA", "AMD", "AMZN"],
        parameters={"lookback": 3, "top_k": 2, "rebalance_every": 2},
    )
    lab.rules.add(model, "caps", {"max_position_pct": 30, "max_trades_per_day": 3})
    whole = lab.start_run(
        model, start="2025-07-01", end="2025-07-15", fill="close", background=False
    )
    assert whole.info.status == "completed"
    recorded = load_recorded(lab.store, whole.id)
    value, decisions = replay(lab.store, recorded, recorded.snapshot.rules)
    assert value == pytest.approx(whole.info.final_value, rel=1e-12)
    stored = lab.rules.decisions(whole.id)
    assert [d["verdict"] for d in decisions] == list(stored["verdict"])
    assert [d["quantity"] for d in decisions] == pytest.approx(list(stored["quantity"]))

    def stop_after_two(event: Any) -> None:
        if event.kind == "step" and event.data["done"] == 2:
            lab.run(event.run_id).stop()

    part = lab.start_run(
        model, start="2025-07-01", end="2025-07-15", fill="close", on_event=stop_after_two
    )
    assert part.wait(60) == "stopped"
    resumed = lab.run(part.id).resume()
    assert resumed.wait(60) == "completed"
    pd.testing.assert_frame_equal(
        whole.ledger()[REPRODUCED_COLUMNS], resumed.ledger()[REPRODUCED_COLUMNS]
    )
    assert prompts(lab, whole.id) == prompts(lab, part.id)
    assert any("at its close" in p for p in prompts(lab, whole.id).values())


def prompts(lab: Lab, run_id: int) -> dict[int, str]:
    """The system prompt of each step's first model call."""
    from sqlalchemy import select

    from ttg_lab.store.schema import LLMCall

    with lab.store.session() as session:
        calls = session.scalars(
            select(LLMCall).where(LLMCall.run_id == run_id, LLMCall.call_index == 1)
        ).all()
        return {c.step_index: c.request["messages"][0]["content"] for c in calls}
