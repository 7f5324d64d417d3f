"""The LLM path's own cost, with a model that answers instantly.

Prints:
- in-memory MCP tool-call overhead (median) against calling the tool function directly;
- engine time per decision with one tool call, and per extra tool call (targets 15 ms
  and 5 ms), through LangChain + MCP with every model call recorded;
- a momentum baseline over NASDAQ-100 x 100 days through the full LangChain + MCP path
  (target < 20 s) and its ratio to the direct path.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any

from _common import fresh_lab
from fastmcp import Client
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_mcp_adapters.tools import load_mcp_tools

from ttg_lab.broker.costs import COST_PRESETS
from ttg_lab.broker.portfolio import Portfolio
from ttg_lab.engine.context import RunContext
from ttg_lab.lab import Lab
from ttg_lab.llm.agent import ChatAgent
from ttg_lab.llm.recording import CallRecorder
from ttg_lab.market.cache import data_fingerprint, price_index
from ttg_lab.market.markets import get_market
from ttg_lab.mcp_services.servers import build_service
from ttg_lab.tools import price


class InstantModel(BaseChatModel):
    """Answers at once: ``calls`` price look-ups in one message, then finishes."""

    calls: int = 1

    @property
    def _llm_type(self) -> str:
        return "instant"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, BaseMessage]:  # type: ignore[override]
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        opening = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
        if any(isinstance(m, ToolMessage) for m in messages[opening:]) or self.calls == 0:
            message = AIMessage(content="DECISION: hold. <FINISH_SIGNAL>")
        else:
            message = AIMessage(
                content="ANALYSIS: look",
                tool_calls=[
                    {
                        "name": "get_price_local",
                        "args": {"symbol": "AAPL"},
                        "id": f"c{i}",
                        "type": "tool_call",
                    }
                    for i in range(self.calls)
                ],
            )
        return ChatResult(generations=[ChatGeneration(message=message)])


def context(lab: Lab) -> RunContext:
    index = price_index(lab.store, "us", "1d", data_fingerprint(lab.store, "us", "1d"))
    ctx = RunContext(
        run_id=0,
        market=get_market("us"),
        index=index,
        tickers=frozenset(index.symbols),
        portfolio=Portfolio(100_000.0),
        costs=COST_PRESETS["zero"],
    )
    ctx.advance(30, index.calendar[30])
    return ctx


def tool_overhead(lab: Lab) -> None:
    ctx = context(lab)
    direct = []
    for _ in range(2000):
        start = time.perf_counter()
        price.get_price_local(ctx, "AAPL")
        direct.append(time.perf_counter() - start)

    async def over_mcp() -> tuple[list[float], list[float]]:
        async with Client(build_service("price", lambda: ctx)) as client:
            tool = next(
                t for t in await load_mcp_tools(client.session) if t.name == "get_price_local"
            )
            raw, wrapped = [], []
            for _ in range(500):
                start = time.perf_counter()
                await client.call_tool("get_price_local", {"symbol": "AAPL"})
                raw.append(time.perf_counter() - start)
                start = time.perf_counter()
                await tool.ainvoke({"symbol": "AAPL"})
                wrapped.append(time.perf_counter() - start)
            return raw, wrapped

    raw, wrapped = asyncio.run(over_mcp())
    ms = 1000
    print("tool call get_price_local (median):")
    print(f"  direct function              {statistics.median(direct) * ms:7.3f} ms")
    print(f"  in-memory MCP (fastmcp)      {statistics.median(raw) * ms:7.3f} ms")
    print(f"  in-memory MCP via LangChain  {statistics.median(wrapped) * ms:7.3f} ms")


def decision_time(lab: Lab) -> None:
    model = lab.models.create("bench probe", ai_model_id="baseline/cash")
    run = lab.start_run(
        model, start="2025-06-10", end="2025-06-11", background=False, path="direct"
    )
    medians = {}
    for calls in (0, 1, 5):
        ctx = context(lab)
        recorder = CallRecorder(lab.store, run.id, 0, "instant", {}, lambda p, c: 0.0, ctx)
        agent = ChatAgent(InstantModel(calls=calls), recorder, {"name": "probe"}, max_steps=5)
        samples = []
        for step in range(40):
            ctx.advance(step, ctx.index.calendar[30 + step % 60])
            start = time.perf_counter()
            agent.run_step(ctx)
            samples.append(time.perf_counter() - start)
        agent.close()
        medians[calls] = statistics.median(samples[5:]) * 1000
    print("engine time per decision with an instant model (median, LangChain + MCP + recording):")
    print(f"  no tool call      {medians[0]:6.1f} ms")
    print(f"  one tool call     {medians[1]:6.1f} ms   (target <= 15 ms)")
    print(f"  per extra call    {(medians[5] - medians[1]) / 4:6.1f} ms   (target <= 5 ms)")


def momentum(lab: Lab) -> None:
    model = lab.models.create(
        "bench momentum",
        ai_model_id="baseline/momentum",
        initial_cash=1_000_000.0,
        parameters={"top_k": 20},
    )
    walls = {}
    for path in ("direct", "chat"):
        start = time.perf_counter()
        run = lab.start_run(model, background=False, path=path)
        walls[path] = time.perf_counter() - start
        info = run.info
        symbols = len(info.snapshot.tickers)
        print(
            f"momentum daily, {symbols} symbols x {info.steps_total} days, "
            f"{path:<6} path: {walls[path]:5.2f} s, {info.total_trades} fills, "
            f"final {info.final_value:,.2f}"
        )
    print(f"  chat / direct = {walls['chat'] / walls['direct']:.1f}x   (chat target < 20 s)")


def main() -> None:
    lab = fresh_lab()
    tool_overhead(lab)
    decision_time(lab)
    momentum(lab)


if __name__ == "__main__":
    main()
