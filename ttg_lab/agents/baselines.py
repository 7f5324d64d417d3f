"""The shipped baselines: policies (:class:`~ttg_lab.agents.policy.Policy`) written with
the same read-only market view a researcher's own policy gets, registered as
``baseline/<name>``. Policies keep no state between steps, so a resumed run decides
exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
from typing import ClassVar

from ttg_lab.agents.params import Param, ParamSpec
from ttg_lab.agents.policy import BASELINE_PREFIX, POLICIES, Decision, MarketView, Order, Policy
from ttg_lab.broker.costs import max_affordable


def rebalance_to(market: MarketView, targets: list[str], prices: dict[str, float]) -> list[Order]:
    """Orders that move the long book to equal weights over ``targets`` (sells first)."""
    fractional = market.fractional
    equity = market.equity
    weight = 1.0 / len(targets) if targets else 0.0
    orders: list[Order] = []
    cash = market.cash
    wanted: dict[str, float] = {}
    for symbol in targets:
        raw = equity * weight / market.costs.fill_price("buy", prices[symbol])
        wanted[symbol] = raw if fractional else float(math.floor(raw))
    for symbol, held in sorted(market.positions.items()):
        if held <= 0 or symbol not in prices:
            continue
        excess = held - wanted.get(symbol, 0.0)
        if excess > 1e-9:
            orders.append(Order("sell", symbol, excess))
            price = market.costs.fill_price("sell", prices[symbol])
            cash += excess * price - market.costs.fees(excess, price)
    for symbol in targets:
        missing = wanted[symbol] - max(market.quantity(symbol), 0.0)
        if missing <= 1e-9:
            continue
        qty = min(missing, max_affordable(cash, prices[symbol], market.costs, fractional))
        if qty > 0:
            orders.append(Order("buy", symbol, qty))
            price = market.costs.fill_price("buy", prices[symbol])
            cash -= qty * price + market.costs.fees(qty, price)
    return orders


class BuyAndHold(Policy):
    """Equal-weight buy at the first step, then hold to the end."""

    name = "buy_and_hold"
    description = "Buy the tickers in equal weights at the first open and hold"

    def decide(self, market: MarketView) -> Decision:
        if market.positions:
            return Decision(analysis="Holding; nothing to do.")
        prices = market.prices
        if not prices:
            return Decision(analysis="No ticker has a price yet; waiting.")
        orders = rebalance_to(market, sorted(prices), prices)
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

    def decide(self, market: MarketView) -> Decision:
        if market.step % self.p["rebalance_every"] != 0:
            return Decision(analysis="Not a rebalance step.")
        prices = market.prices
        lookback = self.p["lookback"]
        scores: dict[str, float] = {}
        for symbol in prices:
            closes = market.closes(symbol, lookback + 1)
            if len(closes) == lookback + 1 and closes[0] > 0:
                scores[symbol] = float(closes[-1] / closes[0] - 1.0)
        if not scores:
            return Decision(analysis=f"Fewer than {lookback + 1} past closes; staying in cash.")
        ranked = sorted(scores, key=lambda s: (-scores[s] if self.descending else scores[s], s))
        targets = sorted(ranked[: self.p["top_k"]])
        orders = rebalance_to(market, targets, prices)
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

    def decide(self, market: MarketView) -> Decision:
        rng = random.Random(f"{market.seed}:{market.step}")
        if rng.random() >= self.p["trade_probability"]:
            return Decision(analysis="Coin says: no trade this step.")
        prices = market.prices
        held = sorted(s for s, q in market.positions.items() if q > 0 and s in prices)
        if held and rng.random() < 0.5:
            symbol = rng.choice(held)
            qty = market.quantity(symbol)
            qty = qty if market.fractional else float(math.floor(qty))
            portion = qty * rng.choice([0.5, 1.0])
            portion = portion if market.fractional else float(max(1, math.floor(portion)))
            orders = [Order("sell", symbol, portion)]
        elif prices:
            symbol = rng.choice(sorted(prices))
            budget = market.cash * rng.uniform(0.0, self.p["max_fraction"])
            qty = max_affordable(budget, prices[symbol], market.costs, market.fractional)
            orders = [Order("buy", symbol, qty)] if qty > 0 else []
        else:
            orders = []
        return Decision(
            orders=orders,
            analysis=f"Seed {market.seed}, step {market.step}.",
            rationale=", ".join(f"{o.action} {o.symbol} x{o.quantity:g}" for o in orders) or "none",
        )


class CashOnly(Policy):
    """Never trades: the zero-risk reference."""

    name = "cash"
    description = "Stay in cash"

    def decide(self, market: MarketView) -> Decision:
        return Decision(analysis="Cash only.")


for _shipped in (BuyAndHold, Momentum, MeanReversion, SeededRandom, CashOnly):
    POLICIES.register(BASELINE_PREFIX + _shipped.name, _shipped)
