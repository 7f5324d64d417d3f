"""The order gate: one function every order from every agent passes before the broker.

It normalises the order (symbol, quantity), applies the hard risk gates that nothing can
switch off, and answers allow, resize or reject with every check that fired and why.
The agent receives that answer as the tool's result.

The gate reads what it judges an order against through :class:`GateInputs` (the
engine's run context is one), so it knows nothing of the engine or the tools.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol, get_args

import numpy as np

from ttg_lab.broker.costs import CostModel, max_affordable
from ttg_lab.broker.fills import PendingOrder
from ttg_lab.broker.portfolio import ACTIONS, QTY_EPSILON, Portfolio
from ttg_lab.errors import shown
from ttg_lab.market.asof import AsOfView, PriceIndex
from ttg_lab.market.markets import Market
from ttg_lab.rules.constraints import RuleSet
from ttg_lab.rules.risk import RiskState

MAX_QUANTITY = 1e9
"""Quantities above this are refused as absurd, whatever the cash."""

MAX_SYMBOL = 32
"""Longest symbol text (the width of the ledger's symbol column)."""


class GateInputs(Protocol):
    """What the gate judges an order against at the clock: the market and its prices, the
    model's tickers, rules and costs, the risk counters, the portfolio, and the book (the
    portfolio with the step's orders waiting for the close counted in)."""

    market: Market
    index: PriceIndex
    view: AsOfView
    tickers: frozenset[str]
    rules: RuleSet
    costs: CostModel
    risk: RiskState
    portfolio: Portfolio
    clock: datetime
    read_only: bool

    @property
    def book(self) -> Portfolio: ...

    def decision_price(self, symbol: str) -> float | None: ...

    def equity_now(self) -> float: ...

    def trades_today(self) -> int: ...

    def bought_today(self, symbol: str) -> float: ...


@dataclass(frozen=True)
class Firing:
    """One check that fired: which and why."""

    rule: str
    reason: str


Verdict = Literal["allow", "resize", "reject"]
"""What the gate decides about an order (``gate_decisions.verdict`` holds it)."""

VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
"""Every gate verdict, in the order of :data:`Verdict`."""


@dataclass
class GateDecision:
    """The gate's answer for one order."""

    verdict: Verdict
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


def symbol_problem(symbol: Any) -> str:
    """Why ``symbol`` cannot name a symbol ('' when it can): not text, empty, too long."""
    sym = normalise_symbol(symbol)
    if not sym:
        return f"symbol must be a non-empty text, got {shown(symbol)}"
    if len(sym) > MAX_SYMBOL:
        return f"symbol is too long ({len(sym):,} characters; at most {MAX_SYMBOL})"
    return ""


def quantity_problem(market: Market, qty: float, sym: str) -> str:
    """Why ``qty`` units of ``sym`` cannot be ordered in ``market`` ('' when they can):
    not positive, absurd, or a fraction where whole units are traded. Every quantity is
    written before its symbol, so a masked run's translation scales it."""
    if qty <= 0:
        return f"quantity must be positive, got {qty:g} {sym}"
    if qty > MAX_QUANTITY:
        return f"quantity {qty:g} {sym} is absurd (limit {MAX_QUANTITY:g} {sym})"
    if not market.fractional and qty != math.floor(qty):
        return f"whole units only in the {market.code} market, got {qty:g} {sym}"
    return ""


def parse_quantity(quantity: Any) -> float | None:
    """A float from a number (int, float, numpy, Decimal) or numeric text; None when it is
    not a number. A bool is not a number: ``true`` is not one share."""
    if isinstance(quantity, bool | np.bool_):
        return None
    if isinstance(quantity, numbers.Real | Decimal):
        return float(quantity)
    if isinstance(quantity, str):
        try:
            return float(quantity.strip())
        except ValueError:
            return None
    return None


def check_order(
    ctx: GateInputs, action: str, symbol: Any, quantity: Any, forced_by: str | None = None
) -> GateDecision:
    """Decide allow / resize / reject for one order at the context's clock.

    Input checks first, then the run's rules (skipped for an exit a rule itself forces),
    then the hard gates on the final quantity, which nothing switches off.
    """
    sym = normalise_symbol(symbol)
    decision = GateDecision("allow", action, sym[:MAX_SYMBOL], 0.0, quantity)
    if ctx.read_only:
        return decision.reject("session", "this session is read-only: it cannot trade")
    if action not in ACTIONS:
        return decision.reject(
            "order", f"unknown action {shown(action)}; use one of {', '.join(ACTIONS)}"
        )
    problem = symbol_problem(symbol)
    if problem:
        return decision.reject("symbol", problem)
    if not ctx.index.has_symbol(sym):
        return decision.reject("symbol", f"unknown symbol {sym} in the {ctx.market.code} market")
    if sym not in ctx.tickers:
        return decision.reject("symbol", f"{sym} is not one of this model's tradable tickers")

    qty = parse_quantity(quantity)
    if isinstance(quantity, bool | np.bool_):
        return decision.reject("quantity", f"quantity must be a number, not a bool ({quantity})")
    if qty is None or not math.isfinite(qty):
        return decision.reject("quantity", f"quantity must be a number, got {shown(quantity)}")
    problem = quantity_problem(ctx.market, qty, sym)
    if problem:
        return decision.reject("quantity", problem)
    decision.quantity = qty

    reference = ctx.decision_price(sym)
    if reference is None or not math.isfinite(reference) or reference <= 0:
        return decision.reject("price", f"no price for {sym} at {ctx.clock:%Y-%m-%d %H:%M}")

    held = ctx.book.quantity(sym)  # max(0.0, -held) below: 0 held reads "0", not "-0"
    if action == "sell" and qty > held + QTY_EPSILON:
        return decision.reject(
            "holdings", f"cannot sell {qty:g} {sym}: {max(0.0, held):g} {sym} held"
        )
    if action == "cover" and qty > -held + QTY_EPSILON:
        return decision.reject(
            "holdings", f"cannot cover {qty:g} {sym}: {max(0.0, -held):g} {sym} short"
        )
    if action == "short" and held > QTY_EPSILON:
        return decision.reject(
            "holdings", f"cannot short {sym} while long {held:g} {sym}; sell first"
        )
    if action == "buy" and held < -QTY_EPSILON:
        return decision.reject(
            "holdings", f"cannot buy {sym} while short {-held:g} {sym}; cover first"
        )

    if forced_by is None and ctx.rules.constraints:
        apply_rules(ctx, decision, reference)
        if not decision.allowed:
            return decision

    if action in ("buy", "cover"):
        price = ctx.costs.fill_price(action, reference)
        qty = decision.quantity
        cost = qty * price + ctx.costs.fees(qty, price)
        if cost > ctx.book.cash + 1e-9:
            return decision.reject(
                "cash",
                f"insufficient cash for {action} {qty:g} {sym}: needs {cost:,.2f}, "
                f"cash is {ctx.book.cash:,.2f}",
            )
    return decision


def _round_down(qty: float, fractional: bool) -> float:
    return math.floor(qty * 1e8) / 1e8 if fractional else float(math.floor(qty + 1e-9))


def apply_rules(ctx: GateInputs, decision: GateDecision, reference: float) -> None:
    """Every applicable constraint may refuse the order or cut its quantity; all apply, so
    the strictest wins. Firings name each constraint that acted and why."""
    action, sym, requested = decision.action, decision.symbol, decision.quantity
    new_risk = action in ("buy", "short")
    price = ctx.costs.fill_price(action, reference)
    risk = ctx.risk
    equity = risk.equity_now if risk.equity_now > 0 else ctx.equity_now()
    held = ctx.book.quantity(sym)
    fractional = ctx.market.fractional
    caps: list[tuple[str, float, str]] = []
    lots: list[tuple[str, int]] = []
    for rule in ctx.rules.constraints:
        if not rule.covers(ctx.market.code, sym):
            continue
        p = rule.params
        refusal = _refusal(ctx, rule.name, p, action, sym, held, new_risk)
        if refusal:
            decision.reject(rule.name, refusal)
            continue
        if new_risk and "max_position_pct" in p:
            room = p["max_position_pct"] / 100 * equity / price - abs(held)
            caps.append(
                (
                    rule.name,
                    room,
                    f"position in {sym} limited to {p['max_position_pct']:g}% of equity",
                )
            )
        if "max_order_value" in p:
            caps.append(
                (
                    rule.name,
                    p["max_order_value"] / price,
                    f"order value limited to {p['max_order_value']:,.2f}",
                )
            )
        if "max_order_pct" in p:
            caps.append(
                (
                    rule.name,
                    p["max_order_pct"] / 100 * equity / price,
                    f"order limited to {p['max_order_pct']:g}% of equity",
                )
            )
        if "min_cash_reserve_pct" in p and action in ("buy", "cover"):
            reserve = p["min_cash_reserve_pct"] / 100 * equity
            per_unit = price * (1 + ctx.costs.commission_bps / 1e4) + ctx.costs.per_share
            room = (ctx.book.cash - reserve - ctx.costs.min_per_order) / per_unit
            caps.append(
                (
                    rule.name,
                    room,
                    f"keeps a cash reserve of {p['min_cash_reserve_pct']:g}% of equity",
                )
            )
        if p.get("t_plus_one") and action == "sell":
            today = ctx.bought_today(sym)
            why = f"T+1: {today:g} {sym} bought today cannot be sold today"
            caps.append((rule.name, held - today, why))
        if "lot_size" in p:
            lots.append((rule.name, p["lot_size"]))
    if not decision.allowed:
        return
    quantity = requested
    for name, cap, why in caps:
        allowed = _round_down(max(cap, 0.0), fractional)
        if allowed < requested - QTY_EPSILON:
            decision.firings.append(Firing(name, f"{why}: at most {allowed:g} {sym}"))
            quantity = min(quantity, allowed)
    for name, lot in lots:
        closing_all = action in ("sell", "cover") and abs(quantity - abs(held)) < QTY_EPSILON
        if not closing_all and quantity % lot:
            quantity = float(math.floor(quantity / lot) * lot)
            decision.firings.append(
                Firing(name, f"orders in lots of {lot:g} {sym}: cut to {quantity:g} {sym}")
            )
    if quantity <= QTY_EPSILON:
        decision.verdict = "reject"
        decision.quantity = 0.0
        if not decision.firings:
            decision.firings.append(Firing("rules", "the rules leave no room for this order"))
        decision.firings[-1] = Firing(
            decision.firings[-1].rule, decision.firings[-1].reason + " (nothing left)"
        )
    elif quantity < requested - QTY_EPSILON:
        decision.verdict = "resize"
        decision.quantity = quantity


def _refusal(
    ctx: GateInputs,
    name: str,
    p: dict[str, Any],
    action: str,
    sym: str,
    held: float,
    new_risk: bool,
) -> str:
    """Why ``name`` refuses the order outright ('' when it does not)."""
    risk = ctx.risk
    if action == "short" and p.get("allow_short") is False:
        return "short selling is not allowed"
    if "max_trades_per_day" in p and ctx.trades_today() >= p["max_trades_per_day"]:
        return f"already {ctx.trades_today()} trades today (limit {p['max_trades_per_day']})"
    if "trading_hours" in p and ctx.index.interval != "1d":
        now = ctx.clock.strftime("%H:%M")
        hours = p["trading_hours"]
        if not hours["start"] <= now <= hours["end"]:
            return f"outside trading hours {hours['start']}-{hours['end']} (now {now})"
    if not new_risk:
        return ""
    if sym in p.get("blocked_symbols", ()):
        return f"{sym} is blocked"
    if "allowed_symbols" in p and sym not in p["allowed_symbols"]:
        return f"{sym} is not among the allowed symbols"
    if name in risk.halted:
        return f"trading halted for the run: {risk.halted[name]}"
    if risk.breakers.get(name) == risk.day:
        limit = p.get("max_daily_loss_pct", 0)
        return f"daily loss circuit breaker tripped (limit {limit:g}%): no new risk today"
    if "max_open_positions" in p and abs(held) < QTY_EPSILON:
        open_now = sum(1 for q in ctx.book.positions.values() if abs(q) > QTY_EPSILON)
        if open_now >= p["max_open_positions"]:
            return f"already {open_now} open positions (limit {p['max_open_positions']})"
    return ""


def limit_at_close(
    ctx: GateInputs, order: PendingOrder, reference: float
) -> tuple[float, Firing | None]:
    """How much of a market-on-close order the hard gates let fill at the close, and the
    check that cut it (None when none did): a sell or cover is cut to the position, a buy
    or cover to what the cash pays at the fill price (in whole lots where a lot rule covers
    the symbol). The order was judged at the open; the close may differ."""
    action, sym, quantity = order.action, order.symbol, order.quantity
    held = ctx.portfolio.quantity(sym)
    limit, firing = quantity, None
    if action == "sell" and quantity > held + QTY_EPSILON:
        limit, firing = max(held, 0.0), Firing("holdings", f"{max(0.0, held):g} {sym} held")
    if action == "cover" and quantity > -held + QTY_EPSILON:
        limit, firing = max(-held, 0.0), Firing("holdings", f"{max(0.0, -held):g} {sym} short")
    if action in ("buy", "cover"):
        price = ctx.costs.fill_price(action, reference)
        cash = ctx.portfolio.cash
        if limit * price + ctx.costs.fees(limit, price) > cash + 1e-9:
            affordable = max_affordable(cash, reference, ctx.costs, ctx.market.fractional)
            limit = min(limit, affordable)
            firing = Firing("cash", f"cash {cash:,.2f} pays for {affordable:g} {sym} at the close")
    if firing is not None and order.forced_by is None:
        closing_all = action in ("sell", "cover") and abs(limit - abs(held)) < QTY_EPSILON
        for rule in ctx.rules.with_param("lot_size"):
            if rule.covers(ctx.market.code, sym) and not closing_all:
                limit = float(math.floor(limit / rule.params["lot_size"]) * rule.params["lot_size"])
    return limit, firing


def stop_loss_exits(ctx: GateInputs) -> list[tuple[str, str, float, str]]:
    """Exits forced at this step's open: (action, symbol, quantity, rule) for every
    position that fell through a stop-loss of a rule covering it."""
    rules = ctx.rules.with_param("stop_loss_pct")
    if not rules:
        return []
    exits = []
    for symbol, held in sorted(ctx.portfolio.positions.items()):
        basis = ctx.risk.cost_basis.get(symbol)
        price = ctx.view.open(symbol) if ctx.index.has_symbol(symbol) else None
        if basis is None or price is None:
            continue
        for rule in rules:
            if not rule.covers(ctx.market.code, symbol):
                continue
            limit = rule.params["stop_loss_pct"] / 100
            if held > 0 and price <= basis * (1 - limit):
                exits.append(("sell", symbol, held, rule.name))
                break
            if held < 0 and price >= basis * (1 + limit):
                exits.append(("cover", symbol, -held, rule.name))
                break
    return exits
