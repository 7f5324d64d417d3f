"""Portfolio tool: cash, positions and equity as known at the clock.

Market-on-close orders accepted in the step are listed as waiting: they change nothing
until the close, whose price is not known yet.
"""

from __future__ import annotations

from typing import Any

from ttg_lab.engine.context import RunContext


def get_portfolio(ctx: RunContext) -> dict[str, Any]:
    """Current cash, positions (valued at the latest known prices) and total equity."""
    view = ctx.view
    positions = []
    prices: dict[str, float] = {}
    for symbol, qty in sorted(ctx.portfolio.positions.items()):
        price = view.open(symbol) or view.last_close(symbol) or 0.0
        prices[symbol] = price
        positions.append({"symbol": symbol, "quantity": qty, "price": price, "value": qty * price})
    answer: dict[str, Any] = {
        "time": ctx.clock.isoformat(sep=" "),
        "cash": ctx.portfolio.cash,
        "positions": positions,
        "equity": ctx.portfolio.equity(prices),
    }
    if ctx.pending:
        answer["waiting_for_the_close"] = [
            {"order_id": o.order_id, "action": o.action, "symbol": o.symbol, "quantity": o.quantity}
            for o in ctx.pending
        ]
    return answer
