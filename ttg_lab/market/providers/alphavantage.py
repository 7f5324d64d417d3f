"""Alpha Vantage: US daily and 60-minute bars, crypto daily bars and NEWS_SENTIMENT.

Every request is ``GET {base_url}/query?function=...&datatype=json`` with the key added
only when it is sent (:meth:`AlphaVantage.send`): planned requests, raw answers, cache
entries, logs and error messages never hold it (an answer that echoes the key, as the
daily-quota note does, has it masked before it is kept).

What is asked for each market:

* ``us`` ``1d``: ``TIME_SERIES_DAILY``, ``outputsize=compact`` (the last 100 trading
  days: ``full`` is premium) unless ``TTG_LAB_ALPHAVANTAGE_PREMIUM`` says a paid plan
  allows ``full``.
* ``us`` ``60min``: ``TIME_SERIES_INTRADAY`` one request per month (``month=YYYY-MM``,
  ``outputsize=full``), raw prices (``adjusted=false``, like the daily series) and
  regular hours only (``extended_hours=false``). Stamps are bar starts, US/Eastern.
* ``crypto`` ``1d``: ``DIGITAL_CURRENCY_DAILY`` in USD (the store's ``BTC-USDT`` is
  asked as ``symbol=BTC&market=USD``): UTC days.

Alpha Vantage answers errors with HTTP 200 and a JSON note; :meth:`AlphaVantage.document`
turns each into a :class:`~ttg_lab.errors.FetchError` of the right kind.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from ttg_lab.errors import ConfigError, DataFileError, FetchError, ValidationError
from ttg_lab.market.importers import alpha_vantage_bars
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
from ttg_lab.market.providers.http import Getter, months, quoted

NAME = "alphavantage"
DEFAULT_BASE_URL = "https://www.alphavantage.co"
URL_ENV = "TTG_LAB_ALPHAVANTAGE_URL"
"""A base URL (``http://127.0.0.1:8000``) or the full ``.../query`` URL: both work."""
PREMIUM_ENV = "TTG_LAB_ALPHAVANTAGE_PREMIUM"
"""Set to ``1`` when the key's plan is a paid one: daily bars are then asked in full."""
KEY_ENVS = ("ALPHAVANTAGE_API_KEY", "ALPHAADVANTAGE_API_KEY", "ALPHA_VANTAGE_API_KEY")
"""Where the key is read from, first set wins (AI-Trader spells it ``ALPHAADVANTAGE``)."""

FREE_LIMITS = (RateLimit(5, 60.0), RateLimit(25, 86_400.0))
"""The free tier: 5 requests a minute, 25 a day."""
PREMIUM_LIMITS = (RateLimit(75, 60.0),)
"""The smallest paid plan: 75 requests a minute, no daily cap."""
COMPACT_BARS = 100
"""Bars a ``compact`` daily answer holds."""
RATE_LIMIT_WAIT = 60.0
"""Seconds to wait after a per-minute note (the window it counts in)."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
_CRYPTO_SYMBOL = re.compile(r"^(?P<base>[A-Z0-9]{2,10})-(?P<quote>USDT|USD)$")


def query_url(base_url: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The ``.../query`` URL for ``base_url`` (or ``$TTG_LAB_ALPHAVANTAGE_URL``, or the
    public host), given with or without ``/query``; a URL that is not http(s) with a host
    is refused naming it."""
    env = os.environ if env is None else env
    given = base_url if base_url is not None else env.get(URL_ENV, "").strip() or DEFAULT_BASE_URL
    text = checked_base_url(given, "Alpha Vantage URL")
    return text if text.endswith("/query") else f"{text}/query"


def api_key(env: Mapping[str, str] | None = None) -> str | None:
    """The key from the environment (:data:`KEY_ENVS`), or None when none is set."""
    env = os.environ if env is None else env
    return next((env[k].strip() for k in KEY_ENVS if env.get(k, "").strip()), None)


def premium_plan(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``$TTG_LAB_ALPHAVANTAGE_PREMIUM`` says the key's plan is a paid one."""
    env = os.environ if env is None else env
    given = env.get(PREMIUM_ENV, "")
    value = given.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{PREMIUM_ENV}={given!r} is not one of 1, true, yes, on, 0, false, no, off")


def crypto_code(symbol: str) -> str:
    """The coin Alpha Vantage is asked for (``BTC-USDT`` -> ``BTC``); other spellings
    (an index such as ``CD5``) are refused naming the symbol."""
    match = _CRYPTO_SYMBOL.match(symbol)
    if match is None:
        raise ValidationError(
            f"{NAME} serves crypto coins quoted in USD(T) such as BTC-USDT, not {symbol!r}"
        )
    return match.group("base")


def _note_error(text: str, symbol: str) -> FetchError:
    """The FetchError an ``Information``/``Note`` answer means, by its wording."""
    lowered = text.lower()
    said = f"Alpha Vantage says: {quoted(text)!r}"
    if "premium feature" in lowered or "premium endpoint" in lowered:
        return FetchError(NAME, symbol, f"needs a premium plan; {said}", "premium")
    if "per minute" in lowered or "frequency" in lowered or "per second" in lowered:
        return FetchError(
            NAME, symbol, f"rate limit reached; {said}", "rate_limit", RATE_LIMIT_WAIT
        )
    if any(words in lowered for words in ("per day", "requests a day", "daily rate limit")):
        return FetchError(NAME, symbol, f"the day's request quota is used up; {said}", "quota")
    return FetchError(NAME, symbol, f"no data in the answer; {said}")


@dataclass
class AlphaVantage:
    """The Alpha Vantage provider (see the module); ``premium`` is the key's plan."""

    base_url: str = DEFAULT_BASE_URL
    premium: bool = False
    name: str = NAME
    markets: tuple[str, ...] = ("us", "crypto")
    intervals: tuple[str, ...] = ("1d", "60min")
    limits: tuple[RateLimit, ...] = field(default=FREE_LIMITS)
    _getter: Getter = field(
        default_factory=lambda: Getter(NAME, lambda: datetime.now(UTC)),
        init=False,
        repr=False,
        compare=False,
    )

    @property
    def url(self) -> str:
        """Where every request goes: ``{base_url}/query``."""
        return query_url(self.base_url)

    def _request(
        self, symbol: str, interval: str, first: date, last: date, params: dict[str, str]
    ) -> FetchRequest:
        query = tuple({**params, "datatype": "json"}.items())
        return FetchRequest(NAME, symbol, interval, self.url, query, first, last)

    def requests(
        self, market: Market, symbol: str, interval: str, first: date, last: date
    ) -> list[FetchRequest]:
        """The requests covering ``symbol``'s ``interval`` bars from ``first`` to ``last``:
        one for daily bars (a free key's answer holds only the last 100 days), one per
        month for 60-minute bars."""
        if first > last:
            raise ValidationError(f"{NAME} {symbol}: period starts {first} after it ends {last}")
        if market.code == "crypto":
            code = crypto_code(symbol)
            if interval != "1d":
                raise ValidationError(
                    f"{NAME} serves crypto daily bars only (intraday is premium), not {interval!r}"
                )
            params = {"function": "DIGITAL_CURRENCY_DAILY", "symbol": code, "market": "USD"}
            return [self._request(symbol, interval, first, last, params)]
        if market.code != "us":
            raise ValidationError(
                f"{NAME} serves markets {', '.join(self.markets)}, not {market.code!r}"
            )
        if not market.is_symbol(symbol):
            raise ValidationError(f"{NAME}: {symbol!r} is not a US symbol such as AAPL")
        if interval == "1d":
            size = "full" if self.premium else "compact"
            params = {"function": "TIME_SERIES_DAILY", "symbol": symbol, "outputsize": size}
            return [self._request(symbol, interval, first, last, params)]
        if interval != "60min":
            raise ValidationError(
                f"{NAME} serves intervals {', '.join(self.intervals)}, not {interval!r}"
            )
        return [
            self._request(
                symbol,
                interval,
                start,
                end,
                {
                    "function": "TIME_SERIES_INTRADAY",
                    "symbol": symbol,
                    "interval": "60min",
                    "month": f"{start:%Y-%m}",
                    "outputsize": "full",
                    "adjusted": "false",
                    "extended_hours": "false",
                },
            )
            for start, end in months(first, last)
        ]

    def news_request(
        self, tickers: Sequence[str], time_from: str, time_to: str, limit: int
    ) -> FetchRequest:
        """A NEWS_SENTIMENT request, latest first, for ``tickers`` (Alpha Vantage's
        spelling: ``AAPL``, ``CRYPTO:BTC``) published ``time_from``..``time_to``
        (``YYYYMMDDTHHMM``, US/Eastern)."""
        if not 1 <= limit <= 1000:
            raise ValidationError(f"{NAME} news: limit must be 1..1000, not {limit}")
        params = {
            "function": "NEWS_SENTIMENT",
            "time_from": time_from,
            "time_to": time_to,
            "sort": "LATEST",
            "limit": str(limit),
        }
        if tickers:
            params["tickers"] = ",".join(tickers)
        first = datetime.strptime(time_from, "%Y%m%dT%H%M").date()
        last = datetime.strptime(time_to, "%Y%m%dT%H%M").date()
        return self._request(",".join(tickers) or "news", "news", first, last, params)

    def send(self, request: FetchRequest, timeout: float = 30.0) -> RawResponse:
        """GET ``request`` with the key from the environment added.

        Sent through the provider's one transport (:class:`~.http.Getter`: no client
        logging the URL, key and all; no redirect followed); an answer that echoes the
        key has it masked.
        """
        key = api_key()
        if key is None:
            raise FetchError(
                NAME, request.symbol, f"no API key: set {' or '.join(KEY_ENVS)}", "auth"
            )
        response = self._getter.get(request, timeout, [("apikey", key)])
        body = response.body
        for shape in {key, quote(key, safe="")}:
            body = body.replace(shape.encode(), b"***")
        return replace(response, body=body)

    def document(self, response: RawResponse) -> dict[str, Any]:
        """The answer's JSON object, or the FetchError its status or content means."""
        symbol = response.request.symbol
        status = response.status
        body = response.body
        if status == 429:
            reason = f"rate limit reached (HTTP 429); waiting {RATE_LIMIT_WAIT:g} s"
            raise FetchError(NAME, symbol, reason, "rate_limit", RATE_LIMIT_WAIT)
        if "html" in response.content_type.lower() or body.lstrip().startswith(b"<"):
            raise FetchError(NAME, symbol, f"an HTML page (HTTP status {status}), not data")
        if status >= 400:
            text = body.decode("utf-8", "replace")
            raise FetchError(NAME, symbol, f"HTTP status {status}: {quoted(text)!r}")
        if not body.strip():
            raise FetchError(NAME, symbol, f"an empty body (HTTP status {status})")
        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            reason = f"truncated or invalid JSON ({len(body):,} bytes: {exc})"
            raise FetchError(NAME, symbol, reason) from None
        if not isinstance(document, dict):
            raise FetchError(NAME, symbol, f"a JSON {type(document).__name__}, not an object")
        if not document:
            raise FetchError(NAME, symbol, "no data for symbol (an empty answer)", "unknown_symbol")
        error = document.get("Error Message")
        if isinstance(error, str):
            said = f"Alpha Vantage says: {quoted(error)!r}"
            if "apikey" in error.lower():
                raise FetchError(NAME, symbol, f"the API key was refused; {said}", "auth")
            raise FetchError(
                NAME, symbol, f"unknown symbol or bad request; {said}", "unknown_symbol"
            )
        has_data = "feed" in document or any(k.startswith("Time Series") for k in document)
        for note in ("Information", "Note"):
            wording = document.get(note)
            if isinstance(wording, str) and not has_data:
                raise _note_error(wording, symbol)
        return document

    def parse(self, response: RawResponse, market: Market) -> Parsed:
        """Every bar of a time-series answer (complete or not), or the FetchError it means."""
        request = response.request
        self.document(response)
        try:
            bars = alpha_vantage_bars(
                response.body.decode("utf-8"), request.shown(), request.symbol
            )
        except DataFileError as exc:
            raise FetchError(NAME, request.symbol, exc.reason) from None
        if bars.interval != request.interval:
            reason = f"{bars.interval} bars in the answer, {request.interval} asked"
            raise FetchError(NAME, request.symbol, reason)
        notes: list[str] = []
        earliest = bars.frame["ts"].min().date()
        params = dict(request.params)
        cut = params.get("outputsize") == "compact" and len(bars.frame) >= COMPACT_BARS
        if cut and earliest > request.first:
            notes.append(
                f"{request.symbol}: a free key gets the last {COMPACT_BARS} daily bars only "
                f"(from {earliest}, asked from {request.first}); set {PREMIUM_ENV}=1 with a "
                "paid plan for the full history"
            )
        if market.code == "crypto" and market.currency != "USD":
            notes.append(f"{request.symbol}: prices are in USD, stored as {market.currency}")
        return Parsed(bars, tuple(notes))


def make_alphavantage(variant: str | None, base_url: str | None) -> DataProvider:
    """The provider for ``alphavantage`` (no variant), pointed at ``base_url`` (or
    ``$TTG_LAB_ALPHAVANTAGE_URL``, or the public host)."""
    if variant:
        raise ValidationError(f"{NAME} has no variants, not {variant!r}")
    base = query_url(base_url).removesuffix("/query")
    premium = premium_plan()
    return AlphaVantage(base, premium, limits=PREMIUM_LIMITS if premium else FREE_LIMITS)


PROVIDERS.register(NAME, make_alphavantage)
