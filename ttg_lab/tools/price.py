"""Price tools: what an agent may know about prices at the simulated clock.

Answers are JSON-ready dicts. A request for a time after the clock, or for the current
bar's high/low/close, raises :class:`~ttg_lab.errors.LookAheadError`; the tool layer
turns that into an error answer for the agent, never into data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from ttg_lab.dates import day_of, parse_date
from ttg_lab.engine.context import RunContext
from ttg_lab.errors import ValidationError
from ttg_lab.rules.gate import normalise_symbol, symbol_problem


def parse_when(value: Any, ctx: RunContext) -> datetime:
    """The bar time an agent asks for: now when not given, else its date read by the one
    parser in the market's time zone (a daily bar is named by its day)."""
    if value is None:
        return ctx.clock
    when = parse_date(value, "date", ctx.market.timezone)
    return day_of(when) if ctx.index.interval == "1d" else when


def get_price_local(ctx: RunContext, symbol: str, date: str | None = None) -> dict[str, Any]:
    """Price bar of ``symbol`` at ``date`` ('YYYY-MM-DD' or 'YYYY-MM-DD HH:MM'; default now).

    Earlier bars are complete (open, high, low, close, volume); for the current bar only
    the open is known. Asking for a later time is refused as look-ahead.
    """
    sym = _symbol(symbol)
    when = parse_when(date, ctx)
    view = ctx.view
    if when == ctx.clock:
        return {"symbol": sym, "time": _fmt(when), "open": view.open(sym)}
    bar = {
        field: view.value(sym, when, field) for field in ("open", "high", "low", "close", "volume")
    }
    if bar["open"] is None:
        return {"symbol": sym, "time": _fmt(when), "error": f"no bar for {sym} at {_fmt(when)}"}
    return {"symbol": sym, "time": _fmt(when), **bar}


def get_price_history(ctx: RunContext, symbol: str, bars: int = 20) -> dict[str, Any]:
    """The last ``bars`` (1-1000) complete price bars of ``symbol`` before now, oldest first."""
    sym = _symbol(symbol)
    if not isinstance(bars, int) or isinstance(bars, bool) or not 1 <= bars <= 1000:
        raise ValidationError(f"bars must be a whole number from 1 to 1000, got {bars!r}")
    frame = ctx.view.history(sym, bars)
    rows = []
    for record in frame.to_dict("records"):
        when = pd.Timestamp(record.pop("ts")).to_pydatetime()
        rows.append({"time": _fmt(when), **record})
    return {"symbol": sym, "bars": rows}


def _symbol(symbol: Any) -> str:
    problem = symbol_problem(symbol)
    if problem:
        raise ValidationError(problem)
    return normalise_symbol(symbol)


def _fmt(when: datetime) -> str:
    return (
        when.strftime("%Y-%m-%d")
        if when.hour == when.minute == 0
        else when.strftime("%Y-%m-%d %H:%M")
    )
