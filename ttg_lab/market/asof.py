"""The simulated clock's view of prices: the only way agents read the market.

A :class:`PriceIndex` holds one market's bars of one interval in memory, indexed once
per run. An :class:`AsOfView` binds it to a clock, the open of the current bar: every
bar strictly before the clock is fully visible, the current bar shows its open only,
and anything later raises :class:`~ttg_lab.errors.LookAheadError`. Daily and intraday
runs follow the same rule; only the bar interval differs.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from ttg_lab.errors import LookAheadError, NotFoundError

FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class SymbolBars:
    """One symbol's bars as parallel arrays, sorted by time."""

    ts: list[datetime]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def column(self, field: str) -> np.ndarray:
        array: np.ndarray = getattr(self, field)
        return array


class PriceIndex:
    """All bars of one market and interval, for fast clock-bound lookups."""

    def __init__(self, frame: pd.DataFrame, market: str, interval: str) -> None:
        self.market = market
        self.interval = interval
        self._bars: dict[str, SymbolBars] = {}
        # one conversion per column, then a slice per symbol (a run's first step waits on it)
        frame = frame.sort_values(["symbol", "ts"], kind="stable")
        symbols = frame["symbol"].astype(str).to_numpy()
        times = list(pd.DatetimeIndex(frame["ts"]).to_pydatetime())
        columns = {c: frame[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close")}
        volume = frame["volume"].to_numpy(dtype=float)
        starts = [i for i in range(len(symbols)) if i == 0 or symbols[i] != symbols[i - 1]]
        ends = [*starts[1:], len(symbols)] if starts else []
        for start, end in zip(starts, ends, strict=True):
            self._bars[str(symbols[start])] = SymbolBars(
                ts=times[start:end],
                **{c: values[start:end] for c, values in columns.items()},
                volume=volume[start:end],
            )
        self.calendar: list[datetime] = sorted({t for b in self._bars.values() for t in b.ts})

    @property
    def symbols(self) -> list[str]:
        return list(self._bars)

    def has_symbol(self, symbol: str) -> bool:
        return symbol in self._bars

    def bars(self, symbol: str) -> SymbolBars:
        try:
            return self._bars[symbol]
        except KeyError:
            raise NotFoundError(
                f"unknown symbol {symbol!r} in {self.market} {self.interval} data"
            ) from None

    def calendar_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Trading times from the data with ``start <= t <= end``."""
        lo = bisect_left(self.calendar, start)
        return [t for t in self.calendar[lo:] if t <= end]

    def close_at_or_before(self, symbol: str, when: datetime) -> float | None:
        """The latest close at or before ``when``: the engine's mark-to-market price.

        Not for agents: it includes the close of the bar at ``when``.
        """
        bars = self._bars.get(symbol)
        if bars is None:
            return None
        i = bisect_left(bars.ts, when)
        if i < len(bars.ts) and bars.ts[i] == when:
            return float(bars.close[i])
        return float(bars.close[i - 1]) if i > 0 else None

    def bar_value(self, symbol: str, when: datetime, field: str) -> float | None:
        """``field`` of the bar labelled exactly ``when``, or None when there is none."""
        bars = self._bars.get(symbol)
        if bars is None:
            return None
        i = bisect_left(bars.ts, when)
        if i < len(bars.ts) and bars.ts[i] == when:
            return float(bars.column(field)[i])
        return None


class AsOfView:
    """Price reads bound to a simulated clock (the open of the current bar)."""

    def __init__(self, index: PriceIndex, clock: datetime) -> None:
        self.index = index
        self.clock = clock

    def _check_field(self, field: str) -> None:
        if field not in FIELDS:
            raise NotFoundError(f"unknown price field {field!r}; known: {', '.join(FIELDS)}")

    def open(self, symbol: str) -> float | None:
        """Today's (the current bar's) open, or None if the symbol has no bar at the clock."""
        return self.index.bar_value(symbol, self.clock, "open") if self._known(symbol) else None

    def _known(self, symbol: str) -> bool:
        self.index.bars(symbol)  # raises NotFoundError for unknown symbols
        return True

    def value(self, symbol: str, when: datetime, field: str = "close") -> float | None:
        """``field`` of the bar at ``when``; refuses anything not yet known at the clock."""
        self._check_field(field)
        bars = self.index.bars(symbol)
        if when > self.clock or (when == self.clock and field != "open"):
            what = field if when == self.clock else ""
            raise LookAheadError(symbol, when, self.clock, what)
        i = bisect_left(bars.ts, when)
        if i < len(bars.ts) and bars.ts[i] == when:
            return float(bars.column(field)[i])
        return None

    def last_close(self, symbol: str) -> float | None:
        """The most recent close strictly before the clock."""
        bars = self.index.bars(symbol)
        i = bisect_left(bars.ts, self.clock)
        return float(bars.close[i - 1]) if i > 0 else None

    def closes(self, symbol: str, lookback: int) -> np.ndarray:
        """Up to ``lookback`` closes strictly before the clock, oldest first (no copy)."""
        bars = self.index.bars(symbol)
        i = bisect_left(bars.ts, self.clock)
        return bars.close[max(0, i - lookback) : i]

    def history(self, symbol: str, lookback: int | None = None) -> pd.DataFrame:
        """Full bars strictly before the clock (the last ``lookback`` of them if given)."""
        bars = self.index.bars(symbol)
        i = bisect_left(bars.ts, self.clock)
        lo = 0 if lookback is None else max(0, i - lookback)
        return pd.DataFrame({"ts": bars.ts[lo:i], **{f: bars.column(f)[lo:i] for f in FIELDS}})

    def history_until(
        self, symbol: str, end: datetime, lookback: int | None = None
    ) -> pd.DataFrame:
        """Bars up to ``end``; refuses an ``end`` after the clock.

        An ``end`` equal to the clock gives the bars before it: the current bar is not
        complete yet.
        """
        if end > self.clock:
            raise LookAheadError(symbol, end, self.clock, "history")
        frame = self.history(symbol)
        frame = frame[frame["ts"] <= end]
        return frame if lookback is None else frame.tail(lookback).reset_index(drop=True)
