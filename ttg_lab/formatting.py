"""How numbers read in tables, reports and panels: one place for money, percent, ratio."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any


def is_missing(value: Any) -> bool:
    """None, NaN, NaT or infinity: a value to show as blank."""
    if value is None:
        return True
    if isinstance(value, float) and not math.isfinite(value):
        return True
    return type(value).__name__ in ("NaTType", "NAType")


def money(value: Any, currency: str = "", missing: str = "") -> str:
    """12,345.67 (with a currency code when given)."""
    if is_missing(value):
        return missing
    return f"{float(value):,.2f} {currency}".rstrip()


def llm_cost_text(value: Any) -> str:
    """An LLM spend in USD: ``$0.0123``; a missing one is ``unknown`` (never blank or 0.00:
    see :mod:`ttg_lab.llm.spend`)."""
    return "unknown" if is_missing(value) else f"${float(value):,.4f}"


def percent(value: Any, signed: bool = True, missing: str = "") -> str:
    """A fraction as percent: 0.1234 -> +12.34%."""
    if is_missing(value):
        return missing
    return f"{float(value):+.2%}" if signed else f"{float(value):.2%}"


def ratio(value: Any, missing: str = "") -> str:
    """A plain ratio with two decimals."""
    return missing if is_missing(value) else f"{float(value):,.2f}"


def when(value: Any, missing: str = "") -> str:
    """A time: the date alone at midnight, else date and minutes."""
    if is_missing(value) or value == "":
        return missing
    ts = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return f"{ts:%Y-%m-%d}" if ts.hour == ts.minute == 0 else f"{ts:%Y-%m-%d %H:%M}"


def by_unit(unit: str, value: Any, currency: str = "", missing: str = "") -> str:
    """A metric value as text for the unit its reference entry gives."""
    if unit == "USD":  # the unit of LLM spend only: missing is unknown
        return llm_cost_text(value)
    if is_missing(value):
        return missing
    if unit == "time":
        return when(value, missing)
    if unit == "flag" or isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) or unit == "symbol":
        return str(value)
    number = float(value)
    if unit == "fraction":
        return percent(number, signed=False)
    if unit == "currency":
        return money(number, currency)
    if unit in ("count", "bars"):
        return f"{number:,.0f}" if number.is_integer() else f"{number:,.1f}"
    return ratio(number)


BOARD_FORMATS: dict[str, Callable[[Any], str]] = {
    **dict.fromkeys(
        (
            "total_return",
            "max_drawdown",
            "benchmark_return",
            "mean_return",
            "mean_ci_low",
            "mean_ci_high",
        ),
        percent,
    ),
    "sharpe": ratio,
    "llm_cost": llm_cost_text,
    "return_per_llm_dollar": money,
    "repriced_final_value": money,
    "repriced_return": percent,
    "repriced_sharpe": ratio,
    "tokens_per_trade": ratio,
}
"""How the leaderboard's columns read, in the command line's table and the dashboard's panel."""
