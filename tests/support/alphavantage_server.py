"""A local Alpha Vantage: ``GET /query`` replaying recorded answers, with every bad one.

Tests start it on 127.0.0.1 (an OS-chosen port) and point the real provider at
:attr:`AlphaVantageServer.base_url`. It serves ``TIME_SERIES_DAILY``,
``TIME_SERIES_INTRADAY`` (``interval=60min``, the ``month`` asked), ``DIGITAL_CURRENCY_DAILY``
and ``NEWS_SENTIMENT`` from ``tests/fixtures/alphavantage/<FUNCTION>_<SYMBOL>.json`` (see the
README there: which are real and which rebuilt), the way Alpha Vantage does: errors as
HTTP 200 JSON notes, ``outputsize=compact`` = the latest 100 bars, ``full`` daily bars a
premium feature unless ``premium=True``, an unknown symbol ``Invalid API call``, a
missing key refused.

:meth:`AlphaVantageServer.release_until` shows only the bars stamped up to a moment (a
forward-run test releases them one by one); :meth:`AlphaVantageServer.fail` makes the
next answers one of :data:`FAULTS`; :attr:`AlphaVantageServer.counts` counts requests per
(function, symbol). Nothing here touches the network beyond the loopback interface.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl, urlsplit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alphavantage"

Fault = Literal[
    "minute_note",
    "daily_quota",
    "premium",
    "unknown_symbol",
    "bad_key",
    "empty_object",
    "html_502",
    "html_503",
    "truncated",
    "empty_body",
    "http_429",
]
FAULTS: tuple[Fault, ...] = get_args(Fault)
"""Every bad answer the server can give instead of the recorded one."""

MINUTE_NOTE = (
    "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute "
    "and 500 calls per day. Please visit https://www.alphavantage.co/premium/ if you would like "
    "to target a higher API call frequency."
)
DAILY_QUOTA = (
    "We have detected your API key as {key} and our standard API rate limit is 25 requests per "
    "day. Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ "
    "to instantly remove all daily rate limits."
)
"""Alpha Vantage's daily-quota answer, which echoes the key it was sent."""
PREMIUM = (
    "Thank you for using Alpha Vantage! The outputsize=full parameter value is a premium "
    "feature for the TIME_SERIES_DAILY endpoint. You may subscribe to any of the premium "
    "plans at https://www.alphavantage.co/premium/ to instantly unlock all premium endpoints"
)
INVALID_CALL = (
    "Invalid API call. Please retry or visit the documentation "
    "(https://www.alphavantage.co/documentation/) for {function}."
)
BAD_KEY = (
    "the parameter apikey is invalid or missing. Please claim your free API key on "
    "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
)
HTML_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)
COMPACT_BARS = 100
SERIES_FUNCTIONS = ("TIME_SERIES_DAILY", "TIME_SERIES_INTRADAY", "DIGITAL_CURRENCY_DAILY")


@dataclass(frozen=True)
class Answer:
    """What the server sends back for one request."""

    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass
class _Failure:
    fault: Fault
    times: int
    symbol: str | None


def _json(document: Any, status: int = 200) -> Answer:
    return Answer(status, json.dumps(document, indent=4, ensure_ascii=False).encode())


def _series_key(document: dict[str, Any]) -> str:
    return next(k for k in document if k.startswith("Time Series"))


class AlphaVantageServer:
    """The server (see the module); use it as a context manager."""

    def __init__(self, fixtures: Path = FIXTURES, premium: bool = False) -> None:
        self.fixtures = fixtures
        self.premium = premium
        self.counts: Counter[tuple[str, str]] = Counter()
        """Requests per (function, symbol or tickers)."""
        self.queries: list[dict[str, str]] = []
        """Every query received, in order (the key included: for tests to check it came)."""
        self._released: datetime | None = None
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (requests go to ``/query`` under it)."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> AlphaVantageServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def release_until(self, ts: datetime | None) -> None:
        """Serve only bars stamped at or before ``ts`` (naive, the series' own zone:
        US/Eastern for US bars, UTC for crypto); None serves every bar."""
        with self._lock:
            self._released = ts

    def fail(self, fault: Fault, times: int = 1, symbol: str | None = None) -> None:
        """Answer the next ``times`` requests (for ``symbol`` only, if given) with ``fault``."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            self._failures.append(_Failure(fault, times, symbol))

    def _take_failure(self, symbol: str) -> Fault | None:
        with self._lock:
            for failure in self._failures:
                if failure.symbol in (None, symbol):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure.fault
        return None

    def answer(self, query: dict[str, str]) -> Answer:
        """The answer to one ``/query`` request."""
        function = query.get("function", "")
        symbol = query.get("symbol") or query.get("tickers") or ""
        with self._lock:
            self.counts[(function, symbol)] += 1
            self.queries.append(dict(query))
        key = query.get("apikey", "")
        if not key.strip():
            return _json({"Error Message": BAD_KEY})
        fault = self._take_failure(symbol)
        if fault is not None:
            return self._fault(fault, query)
        return self._data(query)

    def _fault(self, fault: Fault, query: dict[str, str]) -> Answer:
        notes: dict[Fault, dict[str, str]] = {
            "minute_note": {"Note": MINUTE_NOTE},
            "daily_quota": {"Information": DAILY_QUOTA.format(key=query.get("apikey", ""))},
            "premium": {"Information": PREMIUM},
            "unknown_symbol": {
                "Error Message": INVALID_CALL.format(function=query.get("function", ""))
            },
            "bad_key": {"Error Message": BAD_KEY},
        }
        if fault in notes:
            return _json(notes[fault])
        if fault == "empty_object":
            return _json({})
        if fault in ("html_502", "html_503"):
            status = int(fault[-3:])
            reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable"}[status]
            page = HTML_PAGE.format(status=status, reason=reason).encode()
            return Answer(status, page, "text/html")
        if fault == "truncated":
            whole = self._data(query).body
            return Answer(200, whole[: len(whole) // 2])
        if fault == "empty_body":
            return Answer(200, b"")
        return Answer(429, b"Too Many Requests", "text/plain")

    def _document(self, function: str, symbol: str) -> dict[str, Any] | None:
        path = self.fixtures / f"{function}_{symbol}.json"
        if "/" in symbol or not path.is_file():
            return None
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return document

    def _data(self, query: dict[str, str]) -> Answer:
        function = query.get("function", "")
        invalid = _json({"Error Message": INVALID_CALL.format(function=function)})
        if function == "NEWS_SENTIMENT":
            return self._news(query)
        if function not in SERIES_FUNCTIONS:
            return invalid
        if function == "TIME_SERIES_INTRADAY" and query.get("interval") != "60min":
            return invalid
        if function == "DIGITAL_CURRENCY_DAILY" and query.get("market") != "USD":
            return invalid
        document = self._document(function, query.get("symbol", ""))
        if document is None:
            return invalid
        size = query.get("outputsize", "compact")
        if function == "TIME_SERIES_DAILY" and size == "full" and not self.premium:
            return _json({"Information": PREMIUM})
        key = _series_key(document)
        stamps = sorted(document[key], reverse=True)
        month = query.get("month")
        if function == "TIME_SERIES_INTRADAY" and month:
            stamps = [s for s in stamps if s.startswith(month)]
        with self._lock:
            released = self._released
        if released is not None:
            stamps = [s for s in stamps if datetime.fromisoformat(s) <= released]
        if size == "compact" and function != "DIGITAL_CURRENCY_DAILY":
            stamps = stamps[:COMPACT_BARS]
        document[key] = {s: document[key][s] for s in stamps}
        meta = document.get("Meta Data", {})
        for name in meta:
            if name.endswith("Last Refreshed") and stamps:
                meta[name] = stamps[0]
        return _json(document)

    def _news(self, query: dict[str, str]) -> Answer:
        document: dict[str, Any] = json.loads(
            (self.fixtures / "NEWS_SENTIMENT.json").read_text(encoding="utf-8")
        )
        tickers = {t for t in query.get("tickers", "").split(",") if t}
        start, end = query.get("time_from", ""), query.get("time_to", "")

        def wanted(item: dict[str, Any]) -> bool:
            named = {t.get("ticker") for t in item.get("ticker_sentiment", [])}
            if tickers and not tickers <= named:
                return False
            stamp = str(item.get("time_published", ""))[:13]
            return not stamp or ((not start or stamp >= start) and (not end or stamp <= end))

        feed = [item for item in document["feed"] if wanted(item)]
        feed.sort(key=lambda item: str(item.get("time_published", "")), reverse=True)
        limit = int(query.get("limit", "50"))
        document["feed"] = feed[:limit]
        document["items"] = str(len(document["feed"]))
        return _json(document)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/query":
                    answer = Answer(404, b"Not Found", "text/plain")
                else:
                    answer = server.answer(dict(parse_qsl(parts.query, keep_blank_values=True)))
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: the request line holds the key."""

        return Handler
