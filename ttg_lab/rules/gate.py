"""The order gate: one function every order from every agent passes before the broker.

It normalises the order (symbol, quantity), applies the hard risk gates that nothing can
switch off, and answers allow, resize or reject with every check that fired and why.
The agent receives that answer as the tool's result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ttg_lab.portfolio import ACTIONS, QTY_EPSILON
from ttg_lab.tools.context import RunContext

MAX_QUANTITY = 1e9
"""Quantities above this are refused as absurd, whatever the cash."""


@dataclass(frozen=True)
class Firing:
    """One check that fired: which and why."""

    rule: str
    reason: str


@dataclass
class GateDecision:
    """The gate's answer for one order."""

    verdict: str  # allow | resize | reject
    action: str
    symbol: str
    quantity: float
    requested: Any
    firings: list[Firing] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.verdict != "reject"

    @property
    def reason(self) -> str:
        return "; ".join(f.reason for f in self.firings)

    def reject(self, rule: str, reason: str) -> GateDecision:
        self.verdict = "reject"
        self.firings.append(Firing(rule, reason))
        return self


def normalise_symbol(symbol: Any) -> str:
    """Upper-case, stripped symbol text ('' when not a string)."""
    return symbol.strip().upper() if isinstance(symbol, str) else ""


def parse_quantity(quantity: Any) -> float | None:
    """A float from an int, float or numeric string; None when it is not a number."""
    if isinstance(quantity, bool):
        return None
    if isinstance(quantity, int | float):
        return float(quantity)
    if isinstance(quantity, str):
        try:
            return float(quantity.strip())
        except ValueError:
            return None
    return None


def check_order(ctx: RunContext, action: str, symbol: Any, quantity: Any) -> GateDecision:
    """Decide allow / resize / reject for one order at the context's clock."""
    sym = normalise_symbol(symbol)
    decision = GateDecision("allow", action, sym, 0.0, quantity)
    if ctx.read_only:
        return decision.reject("session", "this session is read-only: it cannot trade")
    if action not in ACTIONS:
        return decision.reject(
            "order", f"unknown action {action!r}; use one of {', '.join(ACTIONS)}"
        )
    if not sym:
        return decision.reject("symbol", f"symbol must be a non-empty text, got {symbol!r}")
    if not ctx.index.has_symbol(sym):
        return decision.reject("symbol", f"unknown symbol {sym} in the {ctx.market.code} market")
    if sym not in ctx.tickers:
        return decision.reject("symbol", f"{sym} is not one of this model's tradable tickers")

    qty = parse_quantity(quantity)
    if qty is None or not math.isfinite(qty):
        return decision.reject("quantity", f"quantity must be a number, got {quantity!r}")
    if qty <= 0:
        return decision.reject("quantity", f"quantity must be positive, got {qty:g}")
    if qty > MAX_QUANTITY:
        return decision.reject("quantity", f"quantity {qty:g} is absurd (limit {MAX_QUANTITY:g})")
    if not ctx.market.fractional and qty != math.floor(qty):
        return decision.reject(
            "quantity", f"whole units only in the {ctx.market.code} market, got {qty:g}"
        )
    decision.quantity = qty

    reference = ctx.reference_price(sym)
    if reference is None or not math.isfinite(reference) or reference <= 0:
        return decision.reject("price", f"no price for {sym} at {ctx.clock:%Y-%m-%d %H:%M}")

    held = ctx.portfolio.quantity(sym)
    if action == "sell" and qty > held + QTY_EPSILON:
        return decision.reject("holdings", f"cannot sell {qty:g} {sym}: {max(held, 0):g} held")
    if action == "cover" and qty > -held + QTY_EPSILON:
        return decision.reject("holdings", f"cannot cover {qty:g} {sym}: {max(-held, 0):g} short")
    if action == "short" and held > QTY_EPSILON:
        return decision.reject("holdings", f"cannot short {sym} while long {held:g}; sell first")
    if action == "buy" and held < -QTY_EPSILON:
        return decision.reject("holdings", f"cannot buy {sym} while short {-held:g}; cover first")

    if action in ("buy", "cover"):
        price = ctx.costs.fill_price(action, reference)
        cost = qty * price + ctx.costs.fees(qty, price)
        if cost > ctx.portfolio.cash + 1e-9:
            return decision.reject(
                "cash",
                f"insufficient cash for {action} {qty:g} {sym}: needs {cost:,.2f}, "
                f"cash is {ctx.portfolio.cash:,.2f}",
            )
    return decision
