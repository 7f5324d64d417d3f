"""Orders: every order of every agent (and every exit a rule forces) goes through the gate,
then the broker, and is booked here; every ledger row is built here.

:func:`place_order` returns a JSON-ready answer for the agent: the fill, or the refusal
with its reason; with ``fill="close"`` an accepted order is only "accepted" (it fills at
the close, after the step: :func:`fill_at_close`). Order ids make calls idempotent: the
same order again under its id within a step returns the first answer instead of trading
twice; another order under a used id is refused (it would otherwise get the first
order's answer).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ttg_lab.broker.fills import CloseFill, Fill, PendingOrder
from ttg_lab.broker.portfolio import QTY_EPSILON, Portfolio
from ttg_lab.engine.context import OrderRequest, RunContext
from ttg_lab.engine.ledger import LedgerRow, LedgerStatus
from ttg_lab.jsonsafe import echo
from ttg_lab.rules.gate import (
    MAX_SYMBOL,
    Firing,
    check_order,
    limit_at_close,
    normalise_symbol,
    parse_quantity,
)


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

    before = _portfolio_now(ctx, ctx.book)
    decision = check_order(ctx, action, symbol, quantity, forced_by)
    rules = [f.rule for f in decision.firings]
    row: LedgerRow | None
    if not decision.allowed:
        asked = parse_quantity(quantity)
        asked = asked if asked is not None and math.isfinite(asked) else 0.0
        shown_symbol = decision.symbol or str(symbol)[:MAX_SYMBOL]
        row = _row(ctx, order_id, action, shown_symbol, asked, "rejected", decision.reason)
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
        reason = decision.reason if not forced_by else f"forced by {forced_by}"
        if ctx.fills_later:  # nothing of the fill is known yet: not its price, fees or cash
            ctx.hold(
                PendingOrder(
                    order_id, action, decision.symbol, decision.quantity, forced_by, reason
                )
            )
            row = None
            answer = {
                "status": "accepted",
                "order_id": order_id,
                "action": action,
                "symbol": decision.symbol,
                "quantity": decision.quantity,
                "fills": f"at the close of the {ctx.clock:%Y-%m-%d %H:%M} bar, plus costs; "
                "the fill is reported at the next step",
            }
        else:
            reference = ctx.reference_price(decision.symbol)
            assert reference is not None  # the gate refused orders without a price
            fill, row = _book_fill(
                ctx, order_id, action, decision.symbol, decision.quantity, reference, reason
            )
            answer = {
                "status": "filled" if decision.verdict == "allow" else "resized",
                "order_id": order_id,
                "action": action,
                "symbol": fill.symbol,
                "quantity": fill.quantity,
                "price": round(fill.price, 6),
                "fees": round(fill.fees, 6),
                "cash": round(ctx.portfolio.cash, 2),
                "position": ctx.portfolio.quantity(fill.symbol),
            }
        if decision.verdict == "resize":
            answer["requested_quantity"] = decision.requested
        if decision.firings:
            answer["notes"] = decision.reason
            answer["rules"] = rules
    if row is not None:
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


def fill_at_close(ctx: RunContext) -> list[CloseFill]:
    """Fill the step's market-on-close orders at the bar's close, once the agent has
    decided, in the order they were accepted; how each ended is what the agent learns at
    the next step.

    The hard gates are checked again at the fill price (:func:`limit_at_close`): an order
    the cash or the position no longer covers is cut to what they allow, or refused when
    nothing is left; the cut goes to the ledger's reason and, as a decision of origin
    ``close``, to the gate decisions.
    """
    return [_fill_pending(ctx, order) for order in ctx.take_pending()]


def _fill_pending(ctx: RunContext, order: PendingOrder) -> CloseFill:
    reference = ctx.reference_price(order.symbol)
    before = _portfolio_now(ctx, ctx.portfolio)
    firing: Firing | None
    if reference is None or not math.isfinite(reference) or reference <= 0:
        quantity, firing = 0.0, Firing("price", f"no close for {order.symbol}")
    else:
        quantity, firing = limit_at_close(ctx, order, reference)
    if reference is None or quantity <= QTY_EPSILON:
        assert firing is not None
        row = _row(
            ctx,
            order.order_id,
            order.action,
            order.symbol,
            order.quantity,
            "rejected",
            f"refused at the close: {firing.reason}",
        )
        report = CloseFill(
            order.order_id,
            order.action,
            order.symbol,
            order.quantity,
            0.0,
            None,
            0.0,
            "rejected",
            firing.reason,
        )
    else:
        cut = f"cut to {quantity:g} {order.symbol} at the close: {firing.reason}" if firing else ""
        reason = "; ".join(r for r in (order.notes, cut) if r)
        fill, row = _book_fill(
            ctx, order.order_id, order.action, order.symbol, quantity, reference, reason
        )
        report = CloseFill(
            order.order_id,
            order.action,
            order.symbol,
            order.quantity,
            fill.quantity,
            fill.price,
            fill.fees,
            "resized" if firing else "filled",
            firing.reason if firing else "",
        )
    ctx.record.ledger.append(row)
    if firing is not None:
        ctx.record.decisions.append(
            {
                "step_index": ctx.step_index,
                "ts": ctx.clock,
                "order_id": order.order_id,
                "origin": "close",
                "action": order.action,
                "symbol": order.symbol,
                "requested": order.quantity,
                "quantity": report.quantity,
                "verdict": "reject" if report.status == "rejected" else "resize",
                "firings": [{"rule": firing.rule, "reason": firing.reason}],
                "portfolio": before,
            }
        )
    return report


def _book_fill(
    ctx: RunContext,
    order_id: str,
    action: str,
    symbol: str,
    quantity: float,
    reference: float,
    reason: str,
) -> tuple[Fill, LedgerRow]:
    """Fill an order at ``reference`` plus costs: portfolio, risk counters, ledger row."""
    price = ctx.costs.fill_price(action, reference)
    fill = Fill(action, symbol, quantity, price, ctx.costs.fees(quantity, price))
    held_before = ctx.portfolio.quantity(symbol)
    ctx.portfolio.apply_fill(fill.action, fill.symbol, fill.quantity, fill.price, fill.fees)
    ctx.risk.record_fill(fill.action, fill.symbol, fill.quantity, fill.price, held_before)
    row = _row(
        ctx, order_id, action, fill.symbol, fill.quantity, "filled", reason, fill.price, fill.fees
    )
    return fill, row


def _portfolio_now(ctx: RunContext, book: Portfolio) -> dict[str, Any]:
    """The portfolio an order is judged against, as its gate decision keeps it."""
    return {"cash": book.cash, "positions": book.snapshot(), "equity": ctx.risk.equity_now}


def _request(action: Any, symbol: Any, quantity: Any) -> OrderRequest:
    """The order as asked, normalised (1, 1.0 and "1" are one quantity)."""
    asked = parse_quantity(quantity)
    return OrderRequest(
        str(action)[:16],
        (normalise_symbol(symbol) or str(symbol))[:100],
        asked if asked is not None and math.isfinite(asked) else str(echo(quantity)),
    )


def ledger_row(
    step_index: int,
    ts: datetime,
    action: str,
    symbol: str | None,
    quantity: float,
    cash_after: float,
    holdings: dict[str, Any],
    order_id: str,
    status: LedgerStatus,
    reason: str = "",
    fill_price: float | None = None,
    fees: float = 0.0,
) -> LedgerRow:
    """A ledger row: the one place rows are made, for the runs of this lab and the runs
    imported from AI-Trader alike."""
    return LedgerRow(
        step_index,
        ts,
        action,
        symbol,
        quantity,
        fill_price,
        fees,
        cash_after,
        holdings,
        order_id,
        status,
        reason,
    )


def _row(
    ctx: RunContext,
    order_id: str,
    action: str,
    symbol: str | None,
    quantity: float,
    status: LedgerStatus,
    reason: str = "",
    fill_price: float | None = None,
    fees: float = 0.0,
) -> LedgerRow:
    """The ledger row of an order at the context's step, with the cash and holdings as
    they are now (after the fill it books)."""
    return ledger_row(
        ctx.step_index,
        ctx.clock,
        str(action)[:16],
        symbol,
        quantity,
        ctx.portfolio.cash,
        ctx.portfolio.snapshot(),
        order_id,
        status,
        reason,
        fill_price,
        fees,
    )


def no_trade_row(ctx: RunContext) -> LedgerRow:
    """The row of a step in which nothing was ordered (every step leaves one row at least)."""
    return _row(ctx, f"s{ctx.step_index}-none", "no_trade", None, 0.0, "none")
