"""The markets the lab knows: trading conventions that rules, broker and metrics need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from ttg_lab.errors import NotFoundError


@dataclass(frozen=True)
class Market:
    """Conventions of one market.

    ``benchmark`` is the symbol runs are compared against; ``fractional`` says whether
    quantities may be fractional (crypto) or must be whole units; ``lot_size`` is the
    board lot (A-shares trade in 100s, enforced as a rule in Step 3).
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
    session_open: time

    def decision_time(self, clock: datetime, interval: str) -> datetime:
        """When a decision at ``clock`` is taken, in exchange-local time.

        Daily bars are labelled with the day (00:00) but orders fill at the session's
        open, so that is the moment of the decision; intraday bars are labelled with
        their start, which is the moment itself.
        """
        if interval == "1d":
            return datetime.combine(clock.date(), self.session_open)
        return clock

    def to_utc(self, local: datetime) -> datetime:
        """An exchange-local naive time as naive UTC (for comparing with news times)."""
        aware = local.replace(tzinfo=ZoneInfo(self.timezone))
        return aware.astimezone(UTC).replace(tzinfo=None)


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
        session_open=time(9, 30),
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
        session_open=time(9, 30),
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
        session_open=time(0, 0),
    ),
}


def get_market(code: str) -> Market:
    """The market called ``code``; a clear error naming the known ones otherwise."""
    try:
        return MARKETS[code]
    except KeyError:
        known = ", ".join(sorted(MARKETS))
        raise NotFoundError(f"unknown market {code!r}; known markets: {known}") from None
