"""Math tools: the arithmetic an agent needs to size orders, exact and explained."""

from __future__ import annotations

import math

from ttg_lab.errors import ValidationError


def _finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number, got {value!r}")
    return value


def add(a: float, b: float) -> float:
    """Return a + b."""
    return _finite("a", a) + _finite("b", b)


def subtract(a: float, b: float) -> float:
    """Return a - b."""
    return _finite("a", a) - _finite("b", b)


def multiply(a: float, b: float) -> float:
    """Return a * b."""
    return _finite("a", a) * _finite("b", b)


def divide(a: float, b: float) -> float:
    """Return a / b (b must not be zero)."""
    if _finite("b", b) == 0:
        raise ValidationError("cannot divide by zero")
    return _finite("a", a) / b


def max_units(cash: float, price: float, fractional: bool = False) -> float:
    """How many units ``cash`` buys at ``price`` before costs (whole units unless fractional)."""
    if _finite("price", price) <= 0:
        raise ValidationError(f"price must be positive, got {price!r}")
    units = max(_finite("cash", cash), 0.0) / price
    return units if fractional else float(math.floor(units))
