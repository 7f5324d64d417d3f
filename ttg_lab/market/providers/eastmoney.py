"""A-share bars from eastmoney's kline endpoint, the one akshare's ``stock_zh_a_hist``
(daily) and ``stock_zh_a_hist_min_em`` (60-minute) call: our own small client, no new
dependency.

``GET {base_url}/api/qt/stock/kline/get?fields1=f1,...,f6&fields2=f51,...,f61&ut=...&klt=
101|60&fqt=0&secid=1.600519&beg=YYYYMMDD&end=YYYYMMDD`` answers ``{"rc": 0, "data":
{"code", "market", "name", "klines": ["2025-11-03,open,close,high,low,volume,amount,..."]}}``
(close before high and low). ``base_url`` defaults to ``https://push2his.eastmoney.com``
(``$TTG_LAB_EASTMONEY_URL``).

Conversions to the store's convention:

* symbols ``600519.SH`` / ``000001.SZ`` / ``430047.BJ`` -> ``secid`` ``1.600519`` /
  ``0.000001`` / ``0.430047``: by the exchange suffix, so the SSE-50 index ``000016.SH``
  is ``1.000016`` (akshare's rule by the first digit would ask the Shenzhen stock 000016).
* ``fqt=0``: raw prices, not adjusted for dividends, as the shipped ``cn_daily`` bars are
  (Tushare's daily bars; adjusted bars would conflict with every stored bar before an
  ex-dividend day).
* volume: eastmoney counts lots of 100 shares; the store counts shares (x100).
* 60-minute stamps are bar ends (``10:30``, ``11:30``, ``14:00``, ``15:00``), stored as
  starts (``09:30``, ``10:30``, ``13:00``, ``14:00``); daily bars are the day.

The endpoint is not a documented public API and publishes no rate limit: the declared one
request a second is our own, conservative choice.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd

from ttg_lab.clock import WALL_CLOCK, Clock
from ttg_lab.errors import FetchError, ValidationError, shown
from ttg_lab.market.bars import BAR_COLUMNS, ImportedBars, to_starts
from ttg_lab.market.importers import sort_bars
from ttg_lab.market.markets import Market
from ttg_lab.market.providers.base import (
    PROVIDERS,
    DataProvider,
    FetchRequest,
    Parsed,
    RateLimit,
    RawResponse,
    checked_base_url,
)
from ttg_lab.market.providers.http import Getter, months, quoted, years

NAME = "eastmoney"
DEFAULT_BASE_URL = "https://push2his.eastmoney.com"
URL_ENV = "TTG_LAB_EASTMONEY_URL"
PATH = "/api/qt/stock/kline/get"
KLT: dict[str, str] = {"1d": "101", "60min": "60"}
"""The lab's intervals as eastmoney's ``klt``."""
ADJUSTMENTS: dict[str, str] = {"none": "0", "forward": "1", "backward": "2"}
"""eastmoney's ``fqt``: raw, forward-adjusted (qfq), backward-adjusted (hfq)."""
FIELDS1 = "f1,f2,f3,f4,f5,f6"
FIELDS2 = "f51,f52,f53,f54,f55,f56,f57,f58,f59,f60,f61"
"""Per kline: date, open, close, high, low, volume (lots), amount, amplitude, change %,
change, turnover."""
UT = "7eea3edcaed734bea9cbfc24409ed989"
"""The public token akshare sends."""
SECID_MARKETS: dict[str, str] = {"SH": "1", "SZ": "0", "BJ": "0"}
SHARES_PER_LOT = 100
LIMITS = (RateLimit(1, 1.0),)
"""Our own choice (eastmoney publishes none, and blocks heavy use)."""


def base_url_of(given: str | None) -> str:
    """``given`` (or ``$TTG_LAB_EASTMONEY_URL``, or the public host) checked: an http(s)
    URL with a host, refused naming it otherwise."""
    text = given if given is not None else os.environ.get(URL_ENV, "").strip()
    return checked_base_url(text or DEFAULT_BASE_URL, "eastmoney URL").removesuffix(PATH)


def secid(symbol: str) -> str:
    """eastmoney's id of an A-share symbol: ``600519.SH`` -> ``1.600519``."""
    code, _, exchange = symbol.partition(".")
    return f"{SECID_MARKETS[exchange]}.{code}"


@dataclass
class Eastmoney:
    """The eastmoney provider (see the module); ``adjust`` is one of :data:`ADJUSTMENTS`."""

    base_url: str = DEFAULT_BASE_URL
    adjust: str = "none"
    clock: Clock = field(default=WALL_CLOCK, repr=False)
    name: str = NAME
    markets: tuple[str, ...] = ("cn",)
    intervals: tuple[str, ...] = tuple(KLT)
    limits: tuple[RateLimit, ...] = LIMITS
    _getter: Getter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._getter = Getter(NAME, self.clock.now)
        if self.adjust not in ADJUSTMENTS:
            known = ", ".join(ADJUSTMENTS)
            raise ValidationError(f"{NAME}: adjustment {self.adjust!r} is not one of {known}")

    def requests(
        self, market: Market, symbol: str, interval: str, first: date, last: date
    ) -> list[FetchRequest]:
        """One request per calendar year of daily bars, per month of 60-minute bars (so
        a finished period's answer stays valid in the cache)."""
        if market.code not in self.markets:
            raise ValidationError(f"{NAME} serves market cn, not {market.code!r}")
        if interval not in KLT:
            raise ValidationError(
                f"{NAME} serves intervals {', '.join(self.intervals)}, not {interval!r}"
            )
        if not market.is_symbol(symbol):
            raise ValidationError(
                f"{NAME}: {shown(symbol)} is not an A-share symbol such as {market.symbol_example}"
            )
        if first > last:
            raise ValidationError(f"{NAME} {symbol}: period starts {first} after it ends {last}")
        spans = years(first, last) if interval == "1d" else months(first, last)
        return [
            FetchRequest(
                NAME,
                symbol,
                interval,
                self.base_url + PATH,
                (
                    ("fields1", FIELDS1),
                    ("fields2", FIELDS2),
                    ("ut", UT),
                    ("klt", KLT[interval]),
                    ("fqt", ADJUSTMENTS[self.adjust]),
                    ("secid", secid(symbol)),
                    ("beg", f"{start:%Y%m%d}"),
                    ("end", f"{end:%Y%m%d}"),
                ),
                start,
                end,
            )
            for start, end in spans
        ]

    def send(self, request: FetchRequest, timeout: float = 30.0) -> RawResponse:
        """GET ``request`` and keep the answer verbatim, whatever its status (no key:
        the endpoint is public), through the provider's one transport; no redirect is
        followed."""
        return self._getter.get(request, timeout)

    def document(self, response: RawResponse) -> dict[str, Any]:
        """The answer's ``data`` object, or the FetchError its status or content means."""
        symbol, status, body = response.request.symbol, response.status, response.body
        if status == 429:
            raise FetchError(NAME, symbol, "rate limit reached (HTTP 429)", "rate_limit")
        if "html" in response.content_type.lower() or body.lstrip().startswith(b"<"):
            raise FetchError(NAME, symbol, f"an HTML page (HTTP status {status}), not klines")
        text = body.decode("utf-8", "replace")
        if status >= 400:
            raise FetchError(NAME, symbol, f"HTTP status {status}: {quoted(text)!r}")
        if not body.strip():
            raise FetchError(NAME, symbol, f"an empty body (HTTP status {status})")
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            reason = f"truncated or invalid JSON ({len(body):,} bytes: {exc})"
            raise FetchError(NAME, symbol, reason) from None
        if not isinstance(document, dict):
            raise FetchError(NAME, symbol, f"a JSON {type(document).__name__}, not an object")
        rc = document.get("rc")
        if rc != 0:
            raise FetchError(NAME, symbol, f"eastmoney answered rc={rc!r}: {quoted(text)!r}")
        data = document.get("data")
        if data is None:
            reason = f"unknown symbol: eastmoney has no data for secid {secid(symbol)}"
            raise FetchError(NAME, symbol, reason, "unknown_symbol")
        if not isinstance(data, dict) or not isinstance(data.get("klines"), list):
            raise FetchError(NAME, symbol, f"no klines list in the answer: {quoted(text)!r}")
        return data

    def parse(self, response: RawResponse, market: Market) -> Parsed:
        """Every bar of the answer (complete or not), in the store's convention."""
        request = response.request
        symbol = request.symbol
        klines = self.document(response)["klines"]
        rows: list[list[Any]] = []
        for number, line in enumerate(klines, start=1):
            fields = line.split(",") if isinstance(line, str) else []
            try:
                stamp = pd.Timestamp(fields[0])
                o, c, h, lo = (float(v) for v in fields[1:5])
                shares = float(Decimal(fields[5]) * SHARES_PER_LOT)  # exact: 33869.7 lots
            except (IndexError, ValueError, ArithmeticError):
                reason = (
                    f"kline {number} is not 'date,open,close,high,low,volume,...': {shown(line)}"
                )
                raise FetchError(NAME, symbol, reason) from None
            rows.append([symbol, stamp, o, h, lo, c, shares])
        frame = pd.DataFrame(rows, columns=BAR_COLUMNS)
        frame["symbol"] = frame["symbol"].astype(object)
        frame["ts"] = to_starts(
            pd.DatetimeIndex(frame["ts"].astype("datetime64[ns]")), request.interval, "end"
        )
        notes = [
            f"{symbol}: eastmoney secid {secid(symbol)}, {self._adjustment_note()}, "
            "volume converted from lots to shares (x100)"
        ]
        if not rows:
            notes.append(f"{symbol}: no bars from {request.first} to {request.last}")
        bars = ImportedBars(sort_bars(frame), request.interval, f"{NAME} {request.shown()}")
        return Parsed(bars, tuple(notes))

    def _adjustment_note(self) -> str:
        if self.adjust == "none":
            return "raw prices (not adjusted for dividends, like the shipped cn_daily)"
        return f"prices {self.adjust}-adjusted for dividends (fqt={ADJUSTMENTS[self.adjust]})"


def make_eastmoney(variant: str | None, base_url: str | None) -> DataProvider:
    """The provider for ``eastmoney`` (raw prices) or ``eastmoney:forward`` /
    ``eastmoney:backward`` (adjusted), pointed at ``base_url`` (or
    ``$TTG_LAB_EASTMONEY_URL``, or the public host)."""
    return Eastmoney(base_url_of(base_url), variant or "none")


PROVIDERS.register(NAME, make_eastmoney)
