"""Trade tools: buy, sell, short, cover. Every order goes through the gate, then the broker.

Each call returns a JSON-ready answer for the agent: the fill, or the refusal with its
reason. Order ids make calls idempotent: the same order again under its id within a step
returns the first answer instead of trading twice; another order under a used id is
refused (it would otherwise get the first order's answer).
"""

from __future__ import annotations

import math
from typing import Any

from ttg_lab.broker import Fill
from ttg_lab.rules.gate import MAX_SYMBOL, check_order, normalise_symbol, parse_quantity
from ttg_lab.tools.answers import echo
from ttg_lab.tools.context import OrderRequest, RunContext


def place_order(
    ctx: RunContext,
    action: str,
    symbol: Any,
    quantity: Any,
    order_id: str | None = None,
    forced_by: str | None = None,
) -> dict[str, Any]:
    """Gate, fill and book one order; the answer the agent sees.

    ``forced_by`` names the rule that forces this order (a stop-loss exit): such an
    order skips the rules but not the hard gates.
    """
    order_id = order_id or ctx.record.next_order_id()
    request = _request(action, symbol, quantity)
    previous = ctx.record.results.get(order_id)
    if previous is not None:
        first = ctx.record.requests[order_id]
        if request == first:
            return {**previous, "duplicate": True}
        return {
            "status": "rejected",
            "order_id": order_id,
            "action": echo(action),
            "symbol": echo(symbol),
            "requested_quantity": echo(quantity),
            "reason": f"order id {order_id} was used for another order in this step ({first});"
            " send this order with a new order_id",
            "rules": ["order"],
        }
    ctx.record.requests[order_id] = request

    portfolio = ctx.portfolio
    before = {
        "cash": portfolio.cash,
        "positions": portfolio.snapshot(),
        "equity": ctx.risk.equity_now,
    }
    decision = check_order(ctx, action, symbol, quantity, forced_by)
    rules = [f.rule for f in decision.firings]
    if not decision.allowed:
        asked = parse_quantity(quantity)
        asked = asked if asked is not None and math.isfinite(asked) else 0.0
        shown_symbol = decision.symbol or str(symbol)[:MAX_SYMBOL]
        row = _ledger_row(ctx, order_id, action, shown_symbol, asked)
        row.update(status="rejected", reason=decision.reason)
        answer = {
            "status": "rejected",
            "order_id": order_id,
            "action": echo(action),
            "symbol": shown_symbol,
            "requested_quantity": echo(quantity),
            "reason": decision.reason,
            "rules": rules,
        }
    else:
        reference = ctx.reference_price(decision.symbol)
        assert reference is not None  # the gate refused orders without a price
        price = ctx.costs.fill_price(action, reference)
        fees = ctx.costs.fees(decision.quantity, price)
        fill = Fill(action, decision.symbol, decision.quantity, price, fees)
        held_before = portfolio.quantity(fill.symbol)
        portfolio.apply_fill(fill.action, fill.symbol, fill.quantity, fill.price, fill.fees)
        ctx.risk.record_fill(fill.action, fill.symbol, fill.quantity, fill.price, held_before)
        row = _ledger_row(ctx, order_id, action, fill.symbol, fill.quantity)
        reason = decision.reason if not forced_by else f"forced by {forced_by}"
        row.update(fill_price=fill.price, fees=fill.fees, status="filled", reason=reason)
        answer = {
            "status": "filled" if decision.verdict == "allow" else "resized",
            "order_id": order_id,
            "action": action,
            "symbol": fill.symbol,
            "quantity": fill.quantity,
            "price": round(fill.price, 6),
            "fees": round(fill.fees, 6),
            "cash": round(portfolio.cash, 2),
            "position": portfolio.quantity(fill.symbol),
        }
        if decision.verdict == "resize":
            answer["requested_quantity"] = decision.requested
        if decision.firings:
            answer["notes"] = decision.reason
            answer["rules"] = rules
    ctx.record.ledger.append(row)
    ctx.record.results[order_id] = answer
    ctx.record.decisions.append(
        {
            "step_index": ctx.step_index,
            "ts": ctx.clock,
            "order_id": order_id,
            "origin": f"rule:{forced_by}" if forced_by else "agent",
            "action": str(action)[:16],
            "symbol": str(decision.symbol or symbol)[:MAX_SYMBOL],
            "requested": echo(quantity),
            "quantity": decision.quantity if decision.allowed else 0.0,
            "verdict": decision.verdict,
            "firings": [{"rule": f.rule, "reason": f.reason} for f in decision.firings],
            "portfolio": before,
        }
    )
    return answer


def _request(action: Any, symbol: Any, quantity: Any) -> OrderRequest:
    """The order as asked, normalised (1, 1.0 and "1" are one quantity)."""
    asked = parse_quantity(quantity)
    return OrderRequest(
        str(action)[:16],
        (normalise_symbol(symbol) or str(symbol))[:100],
        asked if asked is not None and math.isfinite(asked) else str(echo(quantity)),
    )


def _ledger_row(
    ctx: RunContext, order_id: str, action: str, symbol: str, quantity: float
) -> dict[str, Any]:
    return {
        "step_index": ctx.step_index,
        "ts": ctx.clock,
        "action": str(action)[:16],
        "symbol": symbol,
        "quantity": quantity,
        "fill_price": None,
        "fees": 0.0,
        "cash_after": ctx.portfolio.cash,
        "holdings": ctx.portfolio.snapshot(),
        "order_id": order_id,
        "status": "",
        "reason": "",
    }


def buy(
    ctx: RunContext, symbol: str, quantity: float, order_id: str | None = None
) -> dict[str, Any]:
    """Buy ``quantity`` units of ``symbol`` at the current price plus costs.

    Returns the fill (price, fees, cash left) or the reason the order was refused.
    Re-sending the same ``order_id`` never trades twice.
    """
    return place_order(ctx, "buy", symbol, quantity, order_id)


def sell(
    ctx: RunContext, symbol: str, quantity: float, order_id: str | None = None
) -> dict[str, Any]:
    """Sell ``quantity`` units of a long position in ``symbol`` at the current price less costs.

    Returns the fill or the reason the order was refused.
    """
    return place_order(ctx, "sell", symbol, quantity, order_id)


def short(
    ctx: RunContext, symbol: str, quantity: float, order_id: str | None = None
) -> dict[str, Any]:
    """Sell ``quantity`` units of ``symbol`` short (if the model's rules allow shorting).

    Returns the fill or the reason the order was refused.
    """
    return place_order(ctx, "short", symbol, quantity, order_id)


def cover(
    ctx: RunContext, symbol: str, quantity: float, order_id: str | None = None
) -> dict[str, Any]:
    """Buy back ``quantity`` units of a short position in ``symbol``.

    Returns the fill or the reason the order was refused.
    """
    return place_order(ctx, "cover", symbol, quantity, order_id)
