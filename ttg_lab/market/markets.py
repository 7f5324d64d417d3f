"""The markets the lab knows: trading conventions that rules, broker, metrics and the
import checks need.

Times are exchange-local. A market trades in one or more *segments* per trading day
(A-shares break for lunch); a bar is stamped with its **start**, and an intraday bar
belongs to the segment it starts in and ends at ``start + interval`` or at the segment's
close, whichever comes first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ttg_lab.errors import NotFoundError

WEEKDAYS: frozenset[int] = frozenset(range(5))
EVERY_DAY: frozenset[int] = frozenset(range(7))


@dataclass(frozen=True)
class Segment:
    """One continuous trading session of a day, ``open`` to ``close`` (minutes after
    midnight, exchange-local; ``close`` may be 1440 for a market that trades all day)."""

    open: int
    close: int

    def holds_start(self, minute: int) -> bool:
        """Whether a bar starting ``minute`` minutes after midnight starts in this segment."""
        return self.open <= minute < self.close

    def __str__(self) -> str:
        return f"{_clock(self.open)}-{_clock(self.close)}"


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass(frozen=True)
class Market:
    """Conventions of one market.

    ``benchmark`` is the symbol runs are compared against; ``fractional`` says whether
    quantities may be fractional (crypto) or must be whole units; ``lot_size`` is the
    board lot. ``segments`` and ``trading_days`` (weekday numbers, Monday 0) are the
    calendar bars must fit; ``symbol_pattern`` is how the market spells a symbol
    (``symbol_example`` shows one); ``price_range`` is the plausible range of a price.
    Holidays are not known here: the calendar of a run comes from its data.
    """

    code: str
    name: str
    currency: str
    timezone: str
    benchmark: str
    fractional: bool
    lot_size: int
    periods_per_year_daily: int
    bars_per_day_hourly: float
    segments: tuple[Segment, ...]
    trading_days: frozenset[int]
    symbol_pattern: str
    symbol_example: str
    price_range: tuple[float, float]

    @property
    def session_open(self) -> time:
        """The first segment's open: when a daily bar's orders fill."""
        minute = self.segments[0].open
        return time(minute // 60, minute % 60)

    def decision_time(self, clock: datetime, interval: str) -> datetime:
        """When a decision at ``clock`` is taken, in exchange-local time.

        Daily bars are labelled with the day (00:00) but orders fill at the session's
        open, so that is the moment of the decision; intraday bars are stamped with
        their start, which is the moment itself.
        """
        if interval == "1d":
            return datetime.combine(clock.date(), self.session_open)
        return clock

    def to_utc(self, local: datetime) -> datetime:
        """An exchange-local naive time as naive UTC (for comparing with news times)."""
        aware = local.replace(tzinfo=ZoneInfo(self.timezone))
        return aware.astimezone(UTC).replace(tzinfo=None)

    def now(self) -> datetime:
        """The wall clock in exchange-local time (naive), for "not in the future" checks."""
        return datetime.now(ZoneInfo(self.timezone)).replace(tzinfo=None)

    def is_symbol(self, symbol: str) -> bool:
        """Whether ``symbol`` is spelled as this market spells its symbols."""
        return re.fullmatch(self.symbol_pattern, symbol) is not None

    def trades_on(self, day: date) -> bool:
        """Whether ``day`` is a weekday this market trades on (holidays are not known)."""
        return day.weekday() in self.trading_days

    def segment_of(self, start: datetime) -> Segment | None:
        """The segment an intraday bar starting at ``start`` belongs to, or None."""
        minute = start.hour * 60 + start.minute
        exact = start.second == 0 and start.microsecond == 0
        return next((s for s in self.segments if exact and s.holds_start(minute)), None)

    def bar_end(self, start: datetime, minutes: int) -> datetime | None:
        """When an intraday bar of ``minutes`` starting at ``start`` ends: ``start`` plus
        its length, cut at its segment's close; None when it starts outside the sessions."""
        segment = self.segment_of(start)
        if segment is None:
            return None
        day = datetime.combine(start.date(), time())
        return min(start + timedelta(minutes=minutes), day + timedelta(minutes=segment.close))

    def first_open(self, day: date) -> datetime:
        """The start of the day's first segment."""
        return datetime.combine(day, time()) + timedelta(minutes=self.segments[0].open)

    def last_close(self, day: date) -> datetime:
        """The end of the day's last segment."""
        return datetime.combine(day, time()) + timedelta(minutes=self.segments[-1].close)

    @property
    def hours(self) -> str:
        """The sessions as text (``09:30-11:30, 13:00-15:00``)."""
        return ", ".join(str(s) for s in self.segments)


MARKETS: dict[str, Market] = {
    "us": Market(
        code="us",
        name="NASDAQ-100 (US)",
        currency="USD",
        timezone="America/New_York",
        benchmark="QQQ",
        fractional=False,
        lot_size=1,
        periods_per_year_daily=252,
        bars_per_day_hourly=6.5,
        segments=(Segment(9 * 60 + 30, 16 * 60),),
        trading_days=WEEKDAYS,
        symbol_pattern=r"[A-Z][A-Z0-9]{0,5}(?:[.\-][A-Z0-9]{1,3})?",
        symbol_example="AAPL, BRK.B",
        price_range=(1e-4, 1e7),
    ),
    "cn": Market(
        code="cn",
        name="SSE-50 (A-shares)",
        currency="CNY",
        timezone="Asia/Shanghai",
        benchmark="000016.SH",
        fractional=False,
        lot_size=100,
        periods_per_year_daily=252,
        bars_per_day_hourly=4,
        segments=(Segment(9 * 60 + 30, 11 * 60 + 30), Segment(13 * 60, 15 * 60)),
        trading_days=WEEKDAYS,
        symbol_pattern=r"\d{6}\.(?:SH|SZ|BJ)",
        symbol_example="600519.SH",
        price_range=(1e-2, 1e6),
    ),
    "crypto": Market(
        code="crypto",
        name="Crypto (USDT)",
        currency="USDT",
        timezone="UTC",
        benchmark="CD5",
        fractional=True,
        lot_size=1,
        periods_per_year_daily=365,
        bars_per_day_hourly=24,
        segments=(Segment(0, 24 * 60),),
        trading_days=EVERY_DAY,
        symbol_pattern=r"[A-Z0-9]{2,12}(?:-[A-Z0-9]{2,6})?",
        symbol_example="BTC-USDT, CD5",
        price_range=(1e-12, 1e8),
    ),
}


def get_market(code: str) -> Market:
    """The market called ``code``; a clear error naming the known ones otherwise."""
    try:
        return MARKETS[code]
    except KeyError:
        known = ", ".join(sorted(MARKETS))
        raise NotFoundError(f"unknown market {code!r}; known markets: {known}") from None
