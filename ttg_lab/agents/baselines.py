"""Offline baseline strategies: deterministic decision logic, written once.

A policy reads the market only through the run context's as-of view and returns the
orders it wants plus the reasoning behind them. The direct agent executes those orders
through the trade tools; the chat-model wrapper (Step 2) turns the same decisions into
tool calls. Policies keep no state between steps, so a resumed run decides exactly as
an uninterrupted one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ttg_lab.agents.params import Param, ParamSpec
from ttg_lab.broker.costs import max_affordable
from ttg_lab.engine.context import RunContext


@dataclass(frozen=True)
class OrderIntent:
    """An order a policy wants placed."""

    action: str
    symbol: str
    quantity: float


@dataclass
class Decision:
    """A policy's orders for one step, and why."""

    orders: list[OrderIntent] = field(default_factory=list)
    analysis: str = ""
    rationale: str = ""
    seen: dict[str, Any] = field(default_factory=dict)


class Policy:
    """Base of the baselines. Subclasses set ``name``, ``description``, ``params``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[ParamSpec] = {}

    def __init__(self, **parameters: Any) -> None:
        self.p = parameters

    def plan(self) -> str:
        """The strategy in one sentence, with its parameters."""
        settings = ", ".join(f"{k}={v}" for k, v in self.p.items())
        return f"{self.description}" + (f" ({settings})" if settings else "")

    def decide(self, ctx: RunContext) -> Decision:
        raise NotImplementedError


def tradable_now(ctx: RunContext) -> dict[str, float]:
    """Today's opens of the model's tickers that have a bar at the clock.

    Policies size orders with these (known to the agent) even when orders fill at the
    close, so the close never leaks into a decision.
    """
    prices = {}
    for symbol in sorted(ctx.tickers):
        price = ctx.view.open(symbol)
        if price is not None and price > 0:
            prices[symbol] = price
    return prices


def rebalance_to(
    ctx: RunContext, targets: list[str], prices: dict[str, float]
) -> list[OrderIntent]:
    """Orders that move the long book to equal weights over ``targets`` (sells first)."""
    fractional = ctx.market.fractional
    equity = ctx.equity_now()
    weight = 1.0 / len(targets) if targets else 0.0
    orders: list[OrderIntent] = []
    cash = ctx.portfolio.cash
    wanted: dict[str, float] = {}
    for symbol in targets:
        raw = equity * weight / ctx.costs.fill_price("buy", prices[symbol])
        wanted[symbol] = raw if fractional else float(math.floor(raw))
    for symbol, held in sorted(ctx.portfolio.positions.items()):
        if held <= 0 or symbol not in prices:
            continue
        excess = held - wanted.get(symbol, 0.0)
        if excess > 1e-9:
            orders.append(OrderIntent("sell", symbol, excess))
            price = ctx.costs.fill_price("sell", prices[symbol])
            cash += excess * price - ctx.costs.fees(excess, price)
    for symbol in targets:
        missing = wanted[symbol] - max(ctx.portfolio.quantity(symbol), 0.0)
        if missing <= 1e-9:
            continue
        qty = min(missing, max_affordable(cash, prices[symbol], ctx.costs, fractional))
        if qty > 0:
            orders.append(OrderIntent("buy", symbol, qty))
            price = ctx.costs.fill_price("buy", prices[symbol])
            cash -= qty * price + ctx.costs.fees(qty, price)
    return orders


class BuyAndHold(Policy):
    """Equal-weight buy at the first step, then hold to the end."""

    name = "buy_and_hold"
    description = "Buy the tickers in equal weights at the first open and hold"

    def decide(self, ctx: RunContext) -> Decision:
        if ctx.portfolio.positions:
            return Decision(analysis="Holding; nothing to do.")
        prices = tradable_now(ctx)
        if not prices:
            return Decision(analysis="No ticker has a price yet; waiting.")
        orders = rebalance_to(ctx, sorted(prices), prices)
        return Decision(
            orders=orders,
            analysis=f"{len(prices)} tickers priced at the open; equal weight each.",
            rationale="Initial allocation: "
            + ", ".join(f"{o.symbol} x{o.quantity:g}" for o in orders),
            seen={"opens": prices},
        )


class _RankedRebalance(Policy):
    """Shared logic of momentum and mean reversion: rank by past return, hold the top k."""

    params: ClassVar[ParamSpec] = {
        "lookback": Param(int, 20, 1, 500, "bars of past closes the return is measured over"),
        "top_k": Param(int, 10, 1, 1000, "how many symbols to hold"),
        "rebalance_every": Param(int, 5, 1, 1000, "steps between rebalances"),
    }
    descending: ClassVar[bool] = True

    def decide(self, ctx: RunContext) -> Decision:
        if ctx.step_index % self.p["rebalance_every"] != 0:
            return Decision(analysis="Not a rebalance step.")
        prices = tradable_now(ctx)
        lookback = self.p["lookback"]
        scores: dict[str, float] = {}
        for symbol in prices:
            closes = ctx.view.closes(symbol, lookback + 1)
            if len(closes) == lookback + 1 and closes[0] > 0:
                scores[symbol] = float(closes[-1] / closes[0] - 1.0)
        if not scores:
            return Decision(analysis=f"Fewer than {lookback + 1} past closes; staying in cash.")
        ranked = sorted(scores, key=lambda s: (-scores[s] if self.descending else scores[s], s))
        targets = sorted(ranked[: self.p["top_k"]])
        orders = rebalance_to(ctx, targets, prices)
        shown = {s: round(scores[s], 6) for s in ranked[: self.p["top_k"]]}
        return Decision(
            orders=orders,
            analysis=f"{lookback}-bar returns of {len(scores)} symbols; selected: "
            + ", ".join(f"{s} {r:+.2%}" for s, r in shown.items()),
            rationale=f"Rebalance to equal weight over {len(targets)} symbols with "
            f"{len(orders)} order(s).",
            seen={"returns": shown},
        )


class Momentum(_RankedRebalance):
    """Hold the k symbols with the highest past return."""

    name = "momentum"
    description = "Hold the top-k symbols by past return, rebalanced periodically"
    descending = True


class MeanReversion(_RankedRebalance):
    """Hold the k symbols with the lowest past return (short-term reversal)."""

    name = "mean_reversion"
    description = "Hold the k worst recent performers, expecting a rebound"
    descending = False
    params: ClassVar[ParamSpec] = {
        **_RankedRebalance.params,
        "lookback": Param(int, 5, 1, 500, "bars of past closes the return is measured over"),
    }


class SeededRandom(Policy):
    """Random buys and sells, reproducible for a given seed and step."""

    name = "random"
    description = "Random trades from a seeded generator"
    params: ClassVar[ParamSpec] = {
        "trade_probability": Param(float, 0.3, 0.0, 1.0, "chance of trading at a step"),
        "max_fraction": Param(float, 0.2, 0.0, 1.0, "largest share of cash one buy uses"),
    }

    def decide(self, ctx: RunContext) -> Decision:
        rng = random.Random(f"{ctx.seed}:{ctx.step_index}")
        if rng.random() >= self.p["trade_probability"]:
            return Decision(analysis="Coin says: no trade this step.")
        prices = tradable_now(ctx)
        held = sorted(s for s, q in ctx.portfolio.positions.items() if q > 0 and s in prices)
        if held and rng.random() < 0.5:
            symbol = rng.choice(held)
            qty = ctx.portfolio.quantity(symbol)
            qty = qty if ctx.market.fractional else float(math.floor(qty))
            portion = qty * rng.choice([0.5, 1.0])
            portion = portion if ctx.market.fractional else float(max(1, math.floor(portion)))
            orders = [OrderIntent("sell", symbol, portion)]
        elif prices:
            symbol = rng.choice(sorted(prices))
            budget = ctx.portfolio.cash * rng.uniform(0.0, self.p["max_fraction"])
            qty = max_affordable(budget, prices[symbol], ctx.costs, ctx.market.fractional)
            orders = [OrderIntent("buy", symbol, qty)] if qty > 0 else []
        else:
            orders = []
        return Decision(
            orders=orders,
            analysis=f"Seed {ctx.seed}, step {ctx.step_index}.",
            rationale=", ".join(f"{o.action} {o.symbol} x{o.quantity:g}" for o in orders) or "none",
        )


class CashOnly(Policy):
    """Never trades: the zero-risk reference."""

    name = "cash"
    description = "Stay in cash"

    def decide(self, ctx: RunContext) -> Decision:
        return Decision(analysis="Cash only.")


POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (BuyAndHold, Momentum, MeanReversion, SeededRandom, CashOnly)
}
