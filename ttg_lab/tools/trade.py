"""Trade tools: buy, sell, short, cover, as the agents see them.

Each is :func:`ttg_lab.engine.orders.place_order` with its action: the order goes
through the gate, then the broker, and the answer is the fill or the refusal with its
reason (or "accepted" for a market-on-close order). Re-sending the same ``order_id``
never trades twice.
"""

from __future__ import annotations

from typing import Any

from ttg_lab.engine.context import RunContext
from ttg_lab.engine.orders import place_order


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
