"""What a structured rule may say: its parameters, scope and category, validated on save.

Every limit is one parameter with a type and range. A rule may set several; an unknown
key or a value out of range is a :class:`~ttg_lab.errors.ValidationError` that names it,
and nothing is saved.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ttg_lab.errors import ValidationError
from ttg_lab.text import check_name, check_text

CATEGORIES: tuple[str, ...] = (
    "risk",
    "strategy",
    "position_sizing",
    "timing",
    "compliance",
    "other",
)
SCOPE_KEYS: tuple[str, ...] = ("markets", "symbols", "exclude_symbols")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True)
class RuleParam:
    """One enforceable limit."""

    check: Callable[[str, Any], Any]
    doc: str


def _number(low: float, high: float, *, low_open: bool = False) -> Callable[[str, Any], float]:
    def check(name: str, value: Any) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValidationError(f"rule parameter {name} must be a number, got {value!r}")
        if value < low or (low_open and value == low) or value > high:
            bound = f"({low:g}, {high:g}]" if low_open else f"[{low:g}, {high:g}]"
            raise ValidationError(f"rule parameter {name} must be in {bound}, got {value!r}")
        return float(value)

    return check


def _whole(low: int, high: int) -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValidationError(
                f"rule parameter {name} must be a whole number from {low} to {high}, got {value!r}"
            )
        return value

    return check


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"rule parameter {name} must be true or false, got {value!r}")
    return value


def _symbols(name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [v for v in re.split(r"[,\s]+", value) if v]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValidationError(f"rule parameter {name} must be a list of symbols, got {value!r}")
    if len(value) > 10_000:
        raise ValidationError(f"rule parameter {name} lists too many symbols")
    return sorted({v.strip().upper() for v in value})


def _hours(name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or set(value) != {"start", "end"}:
        raise ValidationError(f"rule parameter {name} must be {{'start': 'HH:MM', 'end': 'HH:MM'}}")
    for key in ("start", "end"):
        if not isinstance(value[key], str) or not HHMM.match(value[key]):
            raise ValidationError(f"rule parameter {name}.{key} must be HH:MM, got {value[key]!r}")
    if value["start"] >= value["end"]:
        raise ValidationError(f"rule parameter {name}: start must be before end")
    return {"start": value["start"], "end": value["end"]}


RULE_PARAMS: dict[str, RuleParam] = {
    "max_position_pct": RuleParam(
        _number(0, 100, low_open=True),
        "largest position in one symbol, % of equity (orders are cut down)",
    ),
    "max_open_positions": RuleParam(_whole(1, 10_000), "most symbols held at once"),
    "min_cash_reserve_pct": RuleParam(_number(0, 100), "cash kept after a buy, % of equity"),
    "max_order_value": RuleParam(_number(0, 1e12, low_open=True), "largest order, in currency"),
    "max_order_pct": RuleParam(_number(0, 100, low_open=True), "largest order, % of equity"),
    "max_trades_per_day": RuleParam(_whole(1, 100_000), "most orders filled per trading day"),
    "allowed_symbols": RuleParam(_symbols, "only these symbols may be bought or shorted"),
    "blocked_symbols": RuleParam(_symbols, "these symbols may not be bought or shorted"),
    "allow_short": RuleParam(_flag, "whether short selling is allowed"),
    "max_daily_loss_pct": RuleParam(
        _number(0, 100, low_open=True), "circuit breaker: no new risk for the day after this loss"
    ),
    "max_drawdown_pct": RuleParam(
        _number(0, 100, low_open=True), "no new risk for the rest of the run after this drawdown"
    ),
    "trading_hours": RuleParam(
        _hours, "intraday: orders only between start and end (exchange time)"
    ),
    "lot_size": RuleParam(_whole(1, 1_000_000), "orders in multiples of this (A-shares: 100)"),
    "t_plus_one": RuleParam(_flag, "shares bought today cannot be sold today (A-shares)"),
    "stop_loss_pct": RuleParam(
        _number(0, 100, low_open=True),
        "close a position at the open once it is down this much from cost",
    ),
}
"""Every parameter a rule (or a profile, or a global default/ceiling) can set."""

NEW_RISK_ONLY: frozenset[str] = frozenset(
    {
        "allowed_symbols",
        "blocked_symbols",
        "max_open_positions",
        "max_position_pct",
        "max_daily_loss_pct",
        "max_drawdown_pct",
    }
)
"""Limits that stop new risk (buy, short) but never an exit (sell, cover)."""


def validate_params(params: Any) -> dict[str, Any]:
    """Checked parameters; unknown keys and bad values are refused with their name."""
    if not isinstance(params, dict) or not params:
        raise ValidationError("a rule needs at least one parameter, as a JSON object")
    unknown = sorted(set(params) - set(RULE_PARAMS))
    if unknown:
        raise ValidationError(
            f"unknown rule parameter(s): {', '.join(unknown)}; known: {', '.join(RULE_PARAMS)}"
        )
    return {key: RULE_PARAMS[key].check(key, value) for key, value in sorted(params.items())}


def validate_scope(scope: Any) -> dict[str, Any]:
    """A checked scope: which markets and symbols a rule covers (empty: everything)."""
    if scope is None:
        return {}
    if not isinstance(scope, dict):
        raise ValidationError(f"scope must be a JSON object, got {scope!r}")
    unknown = sorted(set(scope) - set(SCOPE_KEYS))
    if unknown:
        raise ValidationError(
            f"unknown scope key(s): {', '.join(unknown)}; known: {', '.join(SCOPE_KEYS)}"
        )
    checked = {key: _symbols(f"scope.{key}", value) for key, value in scope.items() if value}
    if "markets" in checked:
        checked["markets"] = [m.lower() for m in checked["markets"]]
    return checked


def validate_rule_fields(
    name: Any, category: Any, priority: Any, description: Any
) -> tuple[str, str, int, str]:
    name = check_name(name, "a rule name", 200)
    if category not in CATEGORIES:
        raise ValidationError(f"category must be one of {', '.join(CATEGORIES)}, got {category!r}")
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 10:
        raise ValidationError(f"priority must be a whole number from 1 to 10, got {priority!r}")
    return name, category, priority, check_text(description, "a rule description")
