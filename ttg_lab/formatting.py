"""How numbers read in tables, reports and panels: one place for money, percent, ratio."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def money(value: Any, currency: str = "") -> str:
    """12,345.67 (with a currency code when given); empty when missing."""
    if is_missing(value):
        return ""
    text = f"{float(value):,.2f}"
    return f"{text} {currency}" if currency else text


def percent(value: Any, signed: bool = True) -> str:
    """A fraction as percent: 0.1234 -> +12.34%."""
    if is_missing(value):
        return ""
    return f"{float(value):+.2%}" if signed else f"{float(value):.2%}"


def ratio(value: Any) -> str:
    """A plain ratio with two decimals."""
    return "" if is_missing(value) else f"{float(value):.2f}"


def count(value: Any) -> str:
    return "" if is_missing(value) else f"{int(value):,}"


def when(value: Any) -> str:
    """A timestamp: the date alone at midnight, else date and minutes."""
    if is_missing(value) or value == "":
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return (
            value.strftime("%Y-%m-%d")
            if (value.hour, value.minute) == (0, 0)
            else value.strftime("%Y-%m-%d %H:%M")
        )
    return str(value)


UNIT_FORMATS: dict[str, Callable[[Any], str]] = {
    "fraction": percent,
    "currency": money,
    "USD": money,
    "ratio": ratio,
    "count": count,
    "bars": count,
    "time": when,
}


def by_unit(unit: str, value: Any) -> str:
    """Format a metric value by the unit its reference entry gives."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    formatter = UNIT_FORMATS.get(unit)
    if formatter is None or is_missing(value):
        return "" if is_missing(value) else str(value)
    return formatter(value)
