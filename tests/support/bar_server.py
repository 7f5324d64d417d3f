"""A small bar source of our own for the fetch pipeline's tests: a provider and its server.

The pipeline (:mod:`ttg_lab.market.fetch`) must not depend on one provider's quirks, so its
tests drive it through :class:`BarsProvider` (registered as ``testbars``) over real HTTP
to :class:`BarServer` on 127.0.0.1. The server answers ``GET /bars?symbol=S&interval=I&
month=YYYY-MM`` with ``{"symbol": S, "bars": [[ts, o, h, l, c, v], ...]}`` from bars it is
given (shipped bars in the tests), shows only the bars released so far
(:meth:`BarServer.release_until`), counts requests per (symbol, month), can answer with a
rate-limit note, a quota note, an HTML page or a truncated body instead, and serves a
bar that is still open (its open only is final) when told :attr:`BarServer.open_bar`,
and hold requests after a number of them (:attr:`BarServer.hold_after`).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qsl, urlencode, urlsplit
from urllib.request import urlopen

import pandas as pd

from ttg_lab.errors import FetchError
from ttg_lab.market.bars import ImportedBars
from ttg_lab.market.markets import Market
from ttg_lab.market.providers.base import PROVIDERS, FetchRequest, Parsed, RawResponse
from ttg_lab.ratelimit import RateLimit

NAME = "testbars"
LIMITS_ENV = "TTG_LAB_TESTBARS_LIMITS"
"""``requests/seconds,...`` (e.g. ``5/60,25/86400``): the provider's declared limits."""


def _months(first: date, last: date) -> list[tuple[date, date]]:
    months = []
    start = first.replace(day=1)
    while start <= last:
        following = (start + timedelta(days=32)).replace(day=1)
        months.append((max(start, first), min(following - timedelta(days=1), last)))
        start = following
    return months


class BarsProvider:
    """The ``testbars`` provider: one request per symbol and month."""

    name = NAME
    markets: tuple[str, ...] = ("us", "cn", "crypto")
    intervals: tuple[str, ...] = ("1d", "60min")

    def __init__(self, base_url: str, limits: tuple[RateLimit, ...] = ()) -> None:
        self.base_url = base_url.rstrip("/")
        self.limits = limits
        self.sent = 0

    def requests(
        self, market: Market, symbol: str, interval: str, first: date, last: date
    ) -> list[FetchRequest]:
        params = (("interval", interval), ("symbol", symbol))
        return [
            FetchRequest(
                NAME,
                symbol,
                interval,
                f"{self.base_url}/bars",
                (*params, ("month", f"{start:%Y-%m}")),
                start,
                end,
            )
            for start, end in _months(first, last)
        ]

    def send(self, request: FetchRequest, timeout: float = 30.0) -> RawResponse:
        self.sent += 1
        url = f"{request.url}?{urlencode((*request.params, ('apikey', 'SECRET-KEY')))}"
        try:
            with urlopen(url, timeout=timeout) as answer:
                body, status = answer.read(), answer.status
                kind = answer.headers.get("Content-Type", "")
        except HTTPError as exc:  # an error status still has an answer
            body, status, kind = exc.read(), exc.code, exc.headers.get("Content-Type", "")
        except URLError as exc:
            raise FetchError(NAME, request.symbol, f"no answer: {exc}", "network") from None
        return RawResponse(request, status, body, kind, datetime.now(UTC))

    def parse(self, response: RawResponse, market: Market) -> Parsed:
        symbol = response.request.symbol
        text = response.body.decode("utf-8", errors="replace")
        if text.lstrip().startswith("<"):
            raise FetchError(NAME, symbol, f"an HTML page (HTTP {response.status})")
        try:
            document = json.loads(text)
        except ValueError:
            raise FetchError(NAME, symbol, "a truncated or invalid JSON body") from None
        if "note" in document:
            kind = "quota" if "per day" in document["note"] else "rate_limit"
            raise FetchError(NAME, symbol, document["note"], kind, retry_after=60.0)
        frame = pd.DataFrame(
            document["bars"], columns=["ts", "open", "high", "low", "close", "volume"]
        )
        frame.insert(0, "symbol", document["symbol"])
        frame["ts"] = pd.to_datetime(frame["ts"]).astype("datetime64[ns]")
        for column in ("open", "high", "low", "close", "volume"):
            frame[column] = frame[column].astype("float64")
        return Parsed(ImportedBars(frame, response.request.interval, response.request.shown()))


def _limits_from_env() -> tuple[RateLimit, ...]:
    import os

    spec = os.environ.get(LIMITS_ENV, "")
    pairs = [part.split("/") for part in spec.split(",") if part.strip()]
    return tuple(RateLimit(int(n), float(s)) for n, s in pairs)


def make_testbars(variant: str | None, base_url: str | None) -> BarsProvider:
    if base_url is None:
        raise ValueError("the testbars provider needs a base URL")
    return BarsProvider(base_url, _limits_from_env())


PROVIDERS.register(NAME, make_testbars, replace=True)


class BarServer:
    """Serves ``bars`` (a bar frame: symbol, ts, o, h, l, c, v) per ``interval`` on
    127.0.0.1 (see the module)."""

    def __init__(self, bars: dict[str, pd.DataFrame]) -> None:
        self.bars = bars
        self.released: datetime | None = None
        self.counts: Counter[tuple[str, str]] = Counter()
        self.faults: dict[str, list[str]] = {}
        """Per symbol ("*": any), the bad answers to give next, in order."""
        self.open_bar: tuple[str, datetime, float] | None = None
        """(symbol, start, open) of a bar still open, served with a made-up high/low/close."""
        self.hold_after: int | None = None
        """Requests answered before the next ones are held until :attr:`unheld` is set
        (a test kills its client meanwhile)."""
        self.unheld = threading.Event()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> BarServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.unheld.set()
        self.server.shutdown()
        self.server.server_close()

    def release_until(self, moment: datetime | None) -> None:
        """Serve only bars stamped at or before ``moment`` (None: all)."""
        self.released = moment

    def fail(self, symbol: str, *faults: str) -> None:
        self.faults.setdefault(symbol, []).extend(faults)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def answer(self, query: dict[str, str]) -> tuple[int, str, bytes]:
        symbol, month, interval = query["symbol"], query["month"], query["interval"]
        with self._lock:
            self.counts[(symbol, month)] += 1
            queue = self.faults.get(symbol) or self.faults.get("*") or []
            fault = queue.pop(0) if queue else None
            held = self.hold_after is not None and self.total > self.hold_after
        if held:
            self.unheld.wait(30)
        if fault == "minute":
            return 200, "application/json", b'{"note": "5 calls per minute"}'
        if fault == "quota":
            return 200, "application/json", b'{"note": "25 requests per day"}'
        if fault == "html":
            return 502, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        frame = self.bars[interval]
        frame = frame[
            (frame["symbol"] == symbol) & (pd.DatetimeIndex(frame["ts"]).strftime("%Y-%m") == month)
        ]
        if self.released is not None:
            frame = frame[frame["ts"] <= pd.Timestamp(self.released)]
        rows: list[list[Any]] = [
            [pd.Timestamp(r.ts).isoformat(), r.open, r.high, r.low, r.close, r.volume]
            for r in frame.itertuples()
        ]
        if self.open_bar is not None and self.open_bar[0] == symbol:
            _, start, price = self.open_bar
            rows.append([start.isoformat(), price, price * 1.01, price * 0.99, price, 10.0])
        body = json.dumps({"symbol": symbol, "bars": rows}).encode()
        if fault == "truncated":
            body = body[: len(body) // 2]
        return 200, "application/json", body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = dict(parse_qsl(urlsplit(self.path).query))
                status, kind, body = server.answer(query)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
