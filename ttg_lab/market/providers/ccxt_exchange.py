"""Crypto bars from any exchange ccxt supports (``ccxt:binance``, ``ccxt:kraken``...):
public OHLCV endpoints, no key.

ccxt is an optional extra (``pip install -e ".[crypto]"``), imported when a provider is
built, never with the lab. It is set up for the fetch pipeline, not its own habits:

* ``enableRateLimit=False``: ccxt's throttle sleeps with ``time.sleep``; the pipeline
  waits on its injectable clock for the :attr:`CcxtExchange.limits` declared here (the
  exchange's ``rateLimit``, one request per that many milliseconds).
* spot markets only (``fetchMarkets.types = ['spot']``), so loading the markets asks one
  endpoint.
* every ``urls['api']`` entry has its scheme and host replaced by ``base_url`` (default:
  the exchange's own; ``$TTG_LAB_CCXT_<EXCHANGE>_URL``) for a mirror or a test server.

Symbols: the store's ``BTC-USDT`` is the pair ``BTC/USDT``; a bare ``BTC`` is quoted in
the provider's ``quote`` (default: the market's currency, USDT). USDT is a dollar
stablecoin, not USD: each answer's note says which quote its prices are in.

Pages are planned up front (``since`` = the first day 00:00 UTC, ``limit`` bars, the next
page at ``since + limit * interval``) so every answer is cacheable. The raw body kept is
the exchange's own HTTP answer (its kline JSON), and :meth:`CcxtExchange.parse` decodes
it with ccxt's parser for that exchange, so any exchange works and a cached answer parses
the same without the network. Error answers are classified by ccxt's own error mapping
for the exchange.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from ttg_lab.clock import WALL_CLOCK, Clock
from ttg_lab.errors import ConfigError, FetchError, ValidationError, shown
from ttg_lab.market.bars import BAR_COLUMNS, ImportedBars
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

NAME = "ccxt"
DEFAULT_EXCHANGE = "binance"
INSTALL_HINT = 'pip install -e ".[crypto]"'
TIMEFRAMES: dict[str, str] = {"1d": "1d", "60min": "1h"}
"""The lab's intervals as ccxt timeframes."""
INTERVAL_MS: dict[str, int] = {"1d": 86_400_000, "60min": 3_600_000}
PAGE_LIMIT = 1000
"""Bars asked per request (Binance's maximum)."""
QUOTED_CHARS = 120
"""At most this much of the exchange's own text is quoted in an error."""


def url_env(exchange_id: str) -> str:
    """The variable that points ``exchange_id`` elsewhere: ``TTG_LAB_CCXT_BINANCE_URL``."""
    return f"TTG_LAB_CCXT_{exchange_id.upper()}_URL"


def _ccxt() -> Any:
    """The ccxt module, or a ConfigError saying how to install it."""
    try:
        import ccxt
    except ImportError:
        raise ConfigError(f"the ccxt provider needs the ccxt package: {INSTALL_HINT}") from None
    return ccxt


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _rewritten(urls: Any, base_url: str) -> Any:
    """``urls`` (a URL or nested dicts of them) with each scheme and host replaced by
    ``base_url`` (whose own path, if any, goes before the URL's path)."""
    if isinstance(urls, dict):
        return {key: _rewritten(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str) and "://" in urls:
        return base_url + urls[len(_origin(urls)) :]
    return urls


def _first_url(urls: Any) -> str:
    """The exchange's public API URL: ``urls['api']['public']`` or its first URL."""
    if isinstance(urls, str):
        return urls
    if isinstance(urls, dict):
        ordered = [urls["public"]] if "public" in urls else []
        for value in [*ordered, *urls.values()]:
            found = _first_url(value)
            if found:
                return found
    return ""


def _quoted(text: str) -> str:
    clean = " ".join(text.split())
    return clean if len(clean) <= QUOTED_CHARS else clean[:QUOTED_CHARS] + "…"


def _retry_after(headers: Any) -> float | None:
    """The ``Retry-After`` seconds of ``headers``, when given as a number."""
    value = headers.get("Retry-After") if headers is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


@dataclass(frozen=True)
class _Answer:
    """The last HTTP answer ccxt received: what the raw response keeps."""

    status: int
    headers: Any
    text: str


class CcxtExchange:
    """One ccxt exchange as a data provider (see the module)."""

    markets: tuple[str, ...] = ("crypto",)
    intervals: tuple[str, ...] = tuple(TIMEFRAMES)

    def __init__(
        self,
        exchange_id: str = DEFAULT_EXCHANGE,
        base_url: str | None = None,
        *,
        quote: str | None = None,
        page_limit: int = PAGE_LIMIT,
        clock: Clock = WALL_CLOCK,
    ) -> None:
        ccxt = _ccxt()
        if exchange_id not in ccxt.exchanges:
            raise ValidationError(
                f"ccxt has no exchange {shown(exchange_id)} "
                f"({len(ccxt.exchanges)} known, e.g. binance, kraken, okx; see ccxt.exchanges)"
            )
        if not isinstance(page_limit, int) or not 1 <= page_limit <= PAGE_LIMIT:
            raise ValidationError(f"page_limit must be 1..{PAGE_LIMIT} bars, not {page_limit!r}")
        if quote is not None and not quote.isalnum():
            raise ValidationError(f"quote currency {quote!r} is not a currency code like USDT")
        self.exchange_id = exchange_id
        self.name = f"{NAME}:{exchange_id}"
        self.quote = quote
        self.page_limit = page_limit
        self._clock = clock
        self._errors = ccxt
        self._exchange = getattr(ccxt, exchange_id)(
            {"enableRateLimit": False, "options": {"fetchMarkets": {"types": ["spot"]}}}
        )
        own = _first_url(self._exchange.urls.get("api"))
        self._own_url = own
        """The exchange's own API URL: ccxt maps some error codes by the URL's host."""
        env = os.environ.get(url_env(exchange_id), "").strip()
        if base_url is not None:
            self.base_url = checked_base_url(base_url, f"{self.name} base URL")
        elif env:
            self.base_url = checked_base_url(env, f"${url_env(exchange_id)}")
        else:
            self.base_url = _origin(own)
        if base_url is not None or env:
            self._exchange.urls["api"] = _rewritten(self._exchange.urls["api"], self.base_url)
        per_second = max(1, int(1000 // max(1, int(self._exchange.rateLimit))))
        self.limits: tuple[RateLimit, ...] = (RateLimit(per_second, 1.0),)
        self._last: _Answer | None = None
        self._exchange.on_rest_response = self._keep_answer
        self._lock = threading.Lock()

    def _keep_answer(
        self,
        code: int,
        reason: str,
        url: str,
        method: str,
        headers: Any,
        body: str,
        request_headers: Any,
        request_body: Any,
    ) -> str:
        """ccxt's hook on every HTTP answer: keep it verbatim, hand ccxt what it expects."""
        self._last = _Answer(int(code), headers, body)
        return body.strip()

    # -- planning

    def pair(self, market: Market, symbol: str) -> str:
        """The exchange pair of a store symbol: ``BTC-USDT`` -> ``BTC/USDT``, ``BTC`` ->
        ``BTC/<quote>``."""
        if not market.is_symbol(symbol):
            raise ValidationError(
                f"{self.name}: {shown(symbol)} is not a crypto symbol such as "
                f"{market.symbol_example}"
            )
        base, _, quote = symbol.partition("-")
        return f"{base}/{quote or self.quote or market.currency}"

    def requests(
        self, market: Market, symbol: str, interval: str, first: date, last: date
    ) -> list[FetchRequest]:
        """Pages of at most ``page_limit`` bars covering ``first`` 00:00 UTC to the end of
        ``last``, each a fixed ``since``/``limit`` so its answer can be cached."""
        if market.code not in self.markets:
            raise ValidationError(
                f"{self.name} serves market {', '.join(self.markets)}, not {market.code!r}"
            )
        if interval not in TIMEFRAMES:
            raise ValidationError(
                f"{self.name} serves intervals {', '.join(self.intervals)}, not {interval!r}"
            )
        if first > last:
            raise ValidationError(
                f"{self.name} {symbol}: period starts {first} after it ends {last}"
            )
        pair = self.pair(market, symbol)
        step = INTERVAL_MS[interval]
        since = _day_ms(first)
        end = _day_ms(last + timedelta(days=1))
        pages = []
        while since < end:
            limit = min(self.page_limit, -(-(end - since) // step))
            params = (
                ("symbol", pair),
                ("timeframe", TIMEFRAMES[interval]),
                ("since", str(since)),
                ("limit", str(limit)),
            )
            until = since + limit * step
            pages.append(
                FetchRequest(
                    self.name,
                    symbol,
                    interval,
                    self.base_url,
                    params,
                    _ms_day(since),
                    _ms_day(until - 1),
                )
            )
            since = until
        return pages

    # -- sending

    def send(self, request: FetchRequest, timeout: float = 30.0) -> RawResponse:
        """Ask the exchange for one page (``fetch_ohlcv``, after loading its markets
        once) and keep its HTTP answer verbatim, whatever its status: :meth:`parse`
        judges it. Raised here: an unknown pair (the markets lack it), a rate limit (with
        the ``Retry-After`` the exchange sent) and no answer at all (network)."""
        params = dict(request.params)
        pair, symbol = params["symbol"], request.symbol
        errors = self._errors
        with self._lock:
            ex = self._exchange
            ex.timeout = int(timeout * 1000)
            self._last = None
            try:
                if ex.markets is None:
                    ex.load_markets()
                    self._last = None
                ex.fetch_ohlcv(
                    pair, params["timeframe"], int(params["since"]), int(params["limit"])
                )
            except errors.BadSymbol:
                if self._last is None:
                    reason = f"{self.exchange_id} has no spot pair {pair}"
                    raise FetchError(self.name, symbol, reason, "unknown_symbol") from None
            except errors.BaseError as exc:
                if self._last is None:
                    raise self._network_error(exc, symbol, timeout) from None
                if ex.markets is None:  # the markets' answer was bad: judge it here
                    raise self._answer_error(self._last, symbol, "the exchange's markets") from None
            answer = self._last
        if answer is None:
            raise FetchError(self.name, symbol, "ccxt sent no request", "network")
        if answer.status in (418, 429):
            raise self._answer_error(answer, symbol, "klines")
        return RawResponse(
            request,
            answer.status,
            answer.text.encode("utf-8"),
            str(answer.headers.get("Content-Type", "")) if answer.headers else "",
            self._clock.now(),
        )

    def _network_error(self, exc: Exception, symbol: str, timeout: float) -> FetchError:
        if isinstance(exc, self._errors.RequestTimeout):
            return FetchError(self.name, symbol, f"no answer in {timeout:g} s", "network")
        reason = f"no answer from {self.base_url} ({type(exc).__name__})"
        return FetchError(self.name, symbol, reason, "network")

    def _answer_error(self, answer: _Answer, symbol: str, what: str) -> FetchError:
        """The FetchError an error answer means (send's view: headers known)."""
        error = self._judge(answer.status, answer.headers, answer.text, symbol, what)
        return error or FetchError(
            self.name, symbol, f"{what}: HTTP {answer.status}: {_quoted(answer.text)!r}"
        )

    # -- parsing

    def _judge(
        self, status: int, headers: Any, text: str, symbol: str, what: str = "klines"
    ) -> FetchError | None:
        """What is wrong with an answer (None if nothing): rate limits by status, then
        an HTML page, an empty body, and the exchange's error JSON as ccxt maps it."""
        said = f"HTTP {status}"
        if status in (418, 429):
            wait = _retry_after(headers)
            then = f"; retry after {wait:g} s" if wait is not None else ""
            banned = " (the exchange bans the IP for a while after repeated 429s)"
            extra = banned if status == 418 else ""
            reason = f"rate limit reached ({said}){extra}{then}"
            return FetchError(self.name, symbol, reason, "rate_limit", wait)
        stripped = text.strip()
        content_type = str(headers.get("Content-Type", "")) if headers else ""
        if "html" in content_type.lower() or stripped.startswith("<"):
            return FetchError(self.name, symbol, f"an HTML page ({said}), not {what}")
        if not stripped:
            return FetchError(self.name, symbol, f"an empty body ({said}), not {what}")
        errors, ex = self._errors, self._exchange
        decoded = ex.parse_json(stripped)
        try:
            ex.handle_errors(status, "", self._own_url, "GET", {}, stripped, decoded, {}, None)
            if status >= 400:
                ex.handle_http_status_code(status, "", self._own_url, "GET", stripped)
        except errors.BadSymbol:
            reason = f"unknown symbol: the exchange says {_quoted(stripped)!r}"
            return FetchError(self.name, symbol, reason, "unknown_symbol")
        except (errors.RateLimitExceeded, errors.DDoSProtection):
            reason = f"rate limit reached: the exchange says {_quoted(stripped)!r}"
            return FetchError(self.name, symbol, reason, "rate_limit")
        except errors.AuthenticationError:
            reason = f"the exchange wants a key: {_quoted(stripped)!r}"
            return FetchError(self.name, symbol, reason, "auth")
        except errors.BaseError:
            reason = f"{said}, the exchange says {_quoted(stripped)!r}"
            return FetchError(self.name, symbol, reason)
        if status >= 400:
            return FetchError(self.name, symbol, f"{said}: {_quoted(stripped)!r}")
        return None

    def parse(self, response: RawResponse, market: Market) -> Parsed:
        """The page's bars (complete or not; bars outside the page dropped), decoded from
        the exchange's raw body by ccxt's parser, or the FetchError the answer means."""
        request = response.request
        symbol = request.symbol
        text = response.body.decode("utf-8", "replace")
        headers = {"Content-Type": response.content_type}
        error = self._judge(response.status, headers, text, symbol)
        if error is not None:
            raise error
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            reason = f"truncated or invalid JSON ({len(response.body):,} bytes: {exc})"
            raise FetchError(self.name, symbol, reason) from None
        if not isinstance(rows, list):
            reason = f"a JSON {type(rows).__name__}, not a list of klines: {_quoted(text)!r}"
            raise FetchError(self.name, symbol, reason)
        params = dict(request.params)
        pair, since, limit = params["symbol"], int(params["since"]), int(params["limit"])
        try:
            candles = self._exchange.parse_ohlcvs(rows, self._market(pair))
        except Exception as exc:  # ccxt's parsers raise what their input makes them raise
            reason = f"klines ccxt cannot read ({type(exc).__name__}: {_quoted(str(exc))})"
            raise FetchError(self.name, symbol, reason) from None
        until = since + limit * INTERVAL_MS[request.interval]
        kept = []
        for number, candle in enumerate(candles):
            if len(candle) < 6 or any(value is None for value in candle[:6]):
                reason = f"kline {number + 1} has missing values: {shown(rows[number])}"
                raise FetchError(self.name, symbol, reason)
            if since <= candle[0] < until:
                kept.append(candle[:6])
        return Parsed(
            self._bars(kept, symbol, request, market), self._notes(kept, request, market, pair)
        )

    def _market(self, pair: str) -> dict[str, Any]:
        """ccxt's market of ``pair`` when loaded, else a plain spot market (a cached
        answer parses without the network)."""
        loaded = self._exchange.markets or {}
        if pair in loaded:
            return dict(loaded[pair])
        base, _, quote = pair.partition("/")
        return {"symbol": pair, "base": base, "quote": quote, "spot": True, "type": "spot"}

    def _bars(
        self, candles: list[list[Any]], symbol: str, request: FetchRequest, market: Market
    ) -> ImportedBars:
        frame = pd.DataFrame(candles, columns=["ms", "open", "high", "low", "close", "volume"])
        stamps = pd.to_datetime(frame["ms"].astype("int64"), unit="ms", utc=True)
        frame["ts"] = stamps.dt.tz_convert(market.timezone).dt.tz_localize(None)
        frame["symbol"] = symbol
        bars = sort_bars(frame[BAR_COLUMNS]) if len(frame) else sort_bars(_empty())
        return ImportedBars(bars, request.interval, f"{self.name} {request.shown()}")

    def _notes(
        self, candles: list[list[Any]], request: FetchRequest, market: Market, pair: str
    ) -> tuple[str, ...]:
        quote = pair.partition("/")[2]
        notes = [f"{request.symbol}: {self.exchange_id} spot pair {pair}, prices in {quote}"]
        if quote != market.currency:
            notes.append(
                f"{request.symbol}: {quote} is not the market's {market.currency} "
                "(USDT is a dollar stablecoin, not USD: the two differ by up to ~1%)"
            )
        if not candles:
            notes.append(
                f"{request.symbol}: no bars from {request.first} to {request.last} "
                f"(the exchange has none for this period)"
            )
        return tuple(notes)


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame({column: [] for column in BAR_COLUMNS})
    frame["symbol"] = frame["symbol"].astype(object)
    return frame


def _day_ms(day: date) -> int:
    return int(datetime.combine(day, time(), UTC).timestamp() * 1000)


def _ms_day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def make_ccxt(variant: str | None, base_url: str | None) -> DataProvider:
    """The provider for ``ccxt[:EXCHANGE]`` (binance when no exchange is named)."""
    return CcxtExchange(variant or DEFAULT_EXCHANGE, base_url)


PROVIDERS.register(NAME, make_ccxt)
