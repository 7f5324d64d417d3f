"""Math tools: the arithmetic an agent needs to size orders, exact and explained.

Arguments must be finite numbers (never bools) and so must results: an overflow is an
error the agent reads (see :mod:`ttg_lab.tools.answers`).
"""

from __future__ import annotations

import math

from ttg_lab.errors import ValidationError
from ttg_lab.tools.answers import finite_result, number


def add(a: float, b: float) -> float:
    """Return a + b."""
    return finite_result("add", number("a", a) + number("b", b))


def subtract(a: float, b: float) -> float:
    """Return a - b."""
    return finite_result("subtract", number("a", a) - number("b", b))


def multiply(a: float, b: float) -> float:
    """Return a * b."""
    return finite_result("multiply", number("a", a) * number("b", b))


def divide(a: float, b: float) -> float:
    """Return a / b (b must not be zero)."""
    if number("b", b) == 0:
        raise ValidationError("cannot divide by zero")
    return finite_result("divide", number("a", a) / b)


def max_units(cash: float, price: float, fractional: bool = False) -> float:
    """How many units ``cash`` buys at ``price`` before costs (whole units unless fractional)."""
    if number("price", price) <= 0:
        raise ValidationError(f"price must be positive, got {price!r}")
    units = finite_result("max_units", max(number("cash", cash), 0.0) / price)
    return units if fractional else float(math.floor(units))
