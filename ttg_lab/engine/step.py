"""One simulated step, with no I/O: the part the live run and counterfactual replays share.

Move the clock, update the risk state, execute the exits rules force (stop-losses), let
the agent act, fill its market-on-close orders (the agent learns how at the next step),
record a no-trade when nothing was asked, and mark the portfolio to market at the bar's
close.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ttg_lab.engine import orders
from ttg_lab.engine.context import RunContext
from ttg_lab.rules.gate import stop_loss_exits


class Agent(Protocol):
    """What the engine drives: anything that takes one decision step on a run context
    (acting only through the orders and the tools) and releases what it holds at the end.
    The engine never imports an agent; the agents implement this."""

    def run_step(self, ctx: RunContext) -> None: ...

    def close(self) -> None: ...


def simulate_step(
    ctx: RunContext, agent: Agent, step: int, clock: datetime, last_marked: float
) -> float:
    """Run one step on ``ctx``; returns the equity marked at the bar's close."""
    ctx.advance(step, clock)
    ctx.start_step(last_marked)
    for n, (action, symbol, quantity, rule) in enumerate(stop_loss_exits(ctx), start=1):
        # a namespace of their own: the agent's order ids (s{step}-c1 ...) never collide
        orders.place_order(ctx, action, symbol, quantity, f"s{step}-stop{n}", forced_by=rule)
    agent.run_step(ctx)
    ctx.risk.close_fills = orders.fill_at_close(ctx)
    if not ctx.record.ledger:
        ctx.record.ledger.append(orders.no_trade_row(ctx))
    equity = mark_to_market(ctx, clock)
    ctx.risk.end_step(equity)
    return equity


def mark_to_market(ctx: RunContext, clock: datetime) -> float:
    """Equity at the close of the bar at ``clock`` (the engine, not the agent, sees it)."""
    prices: dict[str, float] = {}
    for symbol in ctx.portfolio.positions:
        price = ctx.index.close_at_or_before(symbol, clock)
        if price is None:
            raise RuntimeError(f"cannot value {symbol}: no close at or before {clock}")
        prices[symbol] = price
    return ctx.portfolio.equity(prices)
