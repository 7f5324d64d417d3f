"""Cash and signed holdings of one run, and the arithmetic that keeps them reconciled.

Holdings are signed quantities (negative = short). Every fill moves cash by exactly
``-signed_qty * price - fees``, so ``cash + sum(qty * price) == equity`` at any prices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ACTIONS: tuple[str, ...] = ("buy", "sell", "short", "cover")
"""Order actions. buy/cover add to the signed position, sell/short take from it."""

QTY_EPSILON = 1e-9
"""Quantities smaller than this are treated as zero (fractional markets)."""


def signed_quantity(action: str, quantity: float) -> float:
    """The change in the signed position that ``action`` of ``quantity`` makes."""
    return quantity if action in ("buy", "cover") else -quantity


@dataclass
class Portfolio:
    """Cash plus signed positions."""

    cash: float
    positions: dict[str, float] = field(default_factory=dict)

    def quantity(self, symbol: str) -> float:
        return self.positions.get(symbol, 0.0)

    def apply_fill(
        self, action: str, symbol: str, quantity: float, price: float, fees: float
    ) -> None:
        """Book a fill. Callers (the gate) have already checked it is allowed."""
        delta = signed_quantity(action, quantity)
        self.cash -= delta * price + fees
        new_qty = self.positions.get(symbol, 0.0) + delta
        if abs(new_qty) < QTY_EPSILON:
            self.positions.pop(symbol, None)
        else:
            self.positions[symbol] = new_qty

    def market_value(self, prices: Mapping[str, float]) -> float:
        """Sum of signed quantity times price over all positions."""
        return math.fsum(qty * prices[sym] for sym, qty in self.positions.items())

    def equity(self, prices: Mapping[str, float]) -> float:
        """Cash plus market value of the positions at ``prices``."""
        return math.fsum([self.cash, self.market_value(prices)])

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of the holdings (symbol -> signed quantity)."""
        return dict(sorted(self.positions.items()))

    def copy(self) -> Portfolio:
        return Portfolio(self.cash, dict(self.positions))
