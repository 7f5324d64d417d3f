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


def probability(value: Any, missing: str = "") -> str:
    """A probability or p-value with three decimals: 0.0432 -> 0.043."""
    return missing if is_missing(value) else f"{float(value):.3f}"


def bars(value: Any, missing: str = "") -> str:
    """A number of bars, whole: 1234.5 -> 1,235 (a track record is counted in bars)."""
    return missing if is_missing(value) else f"{math.ceil(float(value)):,}"


def whole(value: Any, missing: str = "") -> str:
    """A count or an id: 12 (an id column with gaps is never 12.0)."""
    return missing if is_missing(value) else f"{int(value)}"


def flag(value: Any, missing: str = "") -> str:
    """A yes/no column as ``yes`` or ``no``."""
    return missing if is_missing(value) else ("yes" if value else "no")


SHORT_HOLM_VERDICTS = {
    "beats the benchmark (Holm-corrected)": "beats benchmark",
    "trails the benchmark (Holm-corrected)": "trails benchmark",
    "no significant difference (Holm-corrected)": "not significant",
    "too few bars to tell": "too few bars",
    "no benchmark for these bars": "no benchmark",
}
"""A board's Holm verdicts as a narrow column says them (its name says Holm-corrected)."""


def holm_verdict(value: Any) -> str:
    """A Holm verdict, short: ``beats benchmark``, ``not significant``..."""
    return "" if is_missing(value) else SHORT_HOLM_VERDICTS.get(str(value), str(value))


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
        return flag(value)
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
            "annual_return",
            "max_drawdown",
            "best_return",
            "benchmark_return",
            "excess_return",
            "excess_ci_low",
            "excess_ci_high",
            "mean_return",
            "mean_ci_low",
            "mean_ci_high",
        ),
        percent,
    ),
    **dict.fromkeys(("sharpe", "sortino", "cohens_d", "sharpe_diff"), ratio),
    **dict.fromkeys(("p_value", "p_holm", "psr", "dsr", "spa_p_value"), probability),
    **dict.fromkeys(("forward", "masked", "costs_differ", "stepm_beats"), flag),
    **dict.fromkeys(("latest_run", "best_run", "experiment", "rank", "trials"), whole),
    "volatility": lambda value: percent(value, signed=False),
    "min_trl": bars,
    "holm_verdict": holm_verdict,
    "llm_cost": llm_cost_text,
    "return_per_llm_dollar": money,
    "repriced_final_value": money,
    "repriced_return": percent,
    "repriced_sharpe": ratio,
    "tokens_per_trade": ratio,
}
"""How the leaderboard's columns read, in the command line's table and the dashboard's panel."""
