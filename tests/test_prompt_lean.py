"""The lean price table: a whole-market model's prompt lists the tickers it holds and the
universe's most traded, not all of them; small universes keep their exact prompt, and runs
recorded with the full table still replay."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import pytest
from support.openai_server import ChatRequest, OpenAIStubServer, Reply, Text, ToolCalls

from ttg_lab.lab import Lab
from ttg_lab.llm.prompt import LEAN_TICKERS, PROMPT_VERSION, system_prompt
from ttg_lab.runs import service
from ttg_lab.runs.options import RunOptions

START, END = "2025-07-01", "2025-07-02"
FINISH = "DECISION: done. <FINISH_SIGNAL>"


def listed(prompt: str) -> list[str]:
    """The tickers of a prompt's price table."""
    table = prompt.split("Tradable tickers (previous close / today's open):\n", 1)[1]
    return [line.split(":")[0] for line in table.split("\n\n")[0].splitlines() if " / " in line]


def buyer(symbol: str) -> Any:
    """Each step: buy 1 ``symbol``, then finish."""

    def respond(request: ChatRequest) -> Reply:
        if any(m["role"] == "tool" for m in request.messages):
            return Text(FINISH)
        return ToolCalls([("buy", {"symbol": symbol, "quantity": 1})])

    return respond


def whole_market(lab: Lab, server: OpenAIStubServer, name: str) -> Any:
    params = {"base_url": server.base_url, "max_retries": 0, "tool_mode": "native"}
    return lab.models.create(name, ai_model_id="local/smollm2", parameters=params)


def first_context(lab: Lab, model: Any) -> Any:
    """A run's state at its first step, as the run would have it (nothing written)."""
    _, calendar, snapshot = lab._runs.plan(model, "daily", START, END, RunOptions())
    ctx = snapshot.context(snapshot.index(lab.store))
    ctx.advance(0, calendar[0])
    return ctx, snapshot


def test_a_whole_market_prompt_lists_held_and_most_traded_tickers_only(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    model = whole_market(lab, openai_stub, "whole market")
    ctx, snapshot = first_context(lab, model)
    universe = sorted(snapshot.tickers)
    assert len(universe) > LEAN_TICKERS

    def traded(symbol: str) -> float:  # the previous day's close x volume
        bars = ctx.index.bars(symbol)
        i = bisect_left(bars.ts, ctx.clock)
        return float(bars.close[i - 1] * bars.volume[i - 1])

    ranked = sorted(universe, key=lambda s: (-traded(s), s))
    quiet = ranked[-1]  # the least traded: not in a lean table unless held
    openai_stub.reset(buyer(quiet))
    run = lab.start_run(model, start=START, end=END, costs="zero", background=False)
    assert run.status == "completed", run.info.error
    systems = [r.messages[0]["content"] for r in openai_stub.requests if len(r.messages) == 2]
    first, second = systems
    assert listed(first) == sorted(ranked[:LEAN_TICKERS])
    left = len(universe) - LEAN_TICKERS
    assert f"({left} more tickers of your universe are tradable: look up their prices" in first
    assert quiet in listed(second) and len(listed(second)) == LEAN_TICKERS + 1  # held: listed
    assert f"({left - 1} more tickers" in second
    full = system_prompt(ctx, snapshot.model.as_dict(), "ttg-trader-2")
    assert listed(full) == universe and "more tickers" not in full
    assert len(first) < len(full) / 2  # what the lean table saves at every call


def test_a_small_universe_keeps_its_exact_prompt(lab: Lab, openai_stub: OpenAIStubServer) -> None:
    small = lab.models.create("small", ai_model_id="local/smollm2", tickers=["AAPL", "MSFT"])
    ctx, snapshot = first_context(lab, small)
    model = snapshot.model.as_dict()
    assert system_prompt(ctx, model, PROMPT_VERSION) == system_prompt(ctx, model, "ttg-trader-2")
    assert listed(system_prompt(ctx, model)) == ["AAPL", "MSFT"]


def test_a_run_recorded_with_the_full_price_table_replays(
    lab: Lab, openai_stub: OpenAIStubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = whole_market(lab, openai_stub, "old whole market")
    openai_stub.reset(buyer("AAPL"))
    with monkeypatch.context() as patch:  # a run as ttg-trader-2 recorded it: every ticker
        patch.setattr(service, "prompt_version", lambda _parameters: "ttg-trader-2")
        old = lab.start_run(model, start=START, end=END, costs="zero", background=False)
    assert old.status == "completed", old.info.error
    assert len(listed(openai_stub.requests[0].messages[0]["content"])) > LEAN_TICKERS
    replay = old.replay(background=False)
    assert replay.status == "completed", replay.info.error
    assert replay.info.snapshot.prompt_version == "ttg-trader-2"
    keys = ["step_index", "symbol", "action", "quantity", "status", "fill_price"]
    assert replay.ledger()[keys].equals(old.ledger()[keys])
