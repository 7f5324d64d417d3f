"""The markets the lab knows: trading conventions that rules, broker and metrics need."""

from __future__ import annotations

from dataclasses import dataclass

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


MARKETS: dict[str, Market] = {
    "us": Market("us", "NASDAQ-100 (US)", "USD", "US/Eastern", "QQQ", False, 1, 252, 6.5),
    "cn": Market(
        "cn", "SSE-50 (A-shares)", "CNY", "Asia/Shanghai", "000016.SH", False, 100, 252, 4
    ),
    "crypto": Market("crypto", "Crypto (USDT)", "USDT", "UTC", "CD5", True, 1, 365, 24),
}


def get_market(code: str) -> Market:
    """The market called ``code``; a clear error naming the known ones otherwise."""
    try:
        return MARKETS[code]
    except KeyError:
        known = ", ".join(sorted(MARKETS))
        raise NotFoundError(f"unknown market {code!r}; known markets: {known}") from None
