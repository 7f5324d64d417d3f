"""A Binance spot API test server: ``/api/v3/exchangeInfo`` and ``/api/v3/klines`` in
Binance's documented format, the klines built from the shipped crypto bars.

Each shipped coin ``BTC-USDT`` is the spot pair ``BTCUSDT``; a kline row is
``[openTime ms, "open", "high", "low", "close", "volume", closeTime ms, "quoteVolume",
trades, "takerBuyBase", "takerBuyQuote", "0"]`` with ``closeTime = openTime + interval -
1`` (prices as decimal strings, exactly the shipped floats). ``startTime``, ``endTime``
and ``limit`` (default 500, at most 1000, more is refused as Binance does) are honoured.
The quote volume, trades and taker volumes are not in the shipped data: they are made up
(the lab does not read them). The shipped index ``CD5`` is not a pair.

Bad answers (:meth:`KlineServer.fail`): ``unknown_symbol`` HTTP 400
``{"code":-1121,"msg":"Invalid symbol."}``, ``rate_limit`` HTTP 429 with ``Retry-After``,
``banned`` HTTP 418, ``html`` an HTML 502 page, ``truncated``, ``empty``, ``error`` HTTP
400 with another Binance error code.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd

from support.kline_server import HTML_502, Answer, Fault, KlineServer, Route, truncated
from ttg_lab.market.shipped import read_shipped

INTERVAL_MS = {"1d": 86_400_000, "1h": 3_600_000}
"""Binance kline intervals the server serves, in milliseconds."""
DATASETS = {"1d": "crypto_daily"}
"""The shipped dataset each interval is built from (no hourly crypto data is shipped)."""
MAX_LIMIT = 1000


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.tz_localize("UTC").value // 1_000_000)


def _row(bar: object, open_ms: int, step: int) -> list[object]:
    o, h, lo, c, v = (float(getattr(bar, k)) for k in ("open", "high", "low", "close", "volume"))
    return [
        open_ms,
        repr(o),
        repr(h),
        repr(lo),
        repr(c),
        repr(v),
        open_ms + step - 1,
        repr(round(v * c, 8)),
        1000,
        repr(v / 2),
        repr(round(v * c / 2, 8)),
        "0",
    ]


class BinanceServer(KlineServer):
    """The server (see the module); ``frames`` overrides the shipped bars by interval."""

    data_path = "/api/v3/klines"

    def __init__(self, frames: dict[str, pd.DataFrame] | None = None) -> None:
        super().__init__()
        given = frames or {k: read_shipped(name) for k, name in DATASETS.items()}
        self.klines: dict[tuple[str, str], list[list[object]]] = {}
        for interval, frame in given.items():
            step = INTERVAL_MS[interval]
            coins = frame[frame["symbol"].str.contains("-")]
            for symbol, group in coins.groupby("symbol", sort=True):
                pair = str(symbol).replace("-", "")
                rows = [_row(bar, _ms(bar.ts), step) for bar in group.itertuples()]
                self.klines[(pair, interval)] = rows
        self.pairs = sorted({pair for pair, _ in self.klines})
        self.bases = {str(s).replace("-", ""): str(s).split("-") for s in self._symbols(given)}

    @staticmethod
    def _symbols(frames: dict[str, pd.DataFrame]) -> set[str]:
        return {s for f in frames.values() for s in f["symbol"].unique() if "-" in str(s)}

    def routes(self) -> dict[str, Route]:
        return {"/api/v3/exchangeInfo": self._exchange_info, self.data_path: self._klines}

    def _exchange_info(self, query: dict[str, str]) -> Answer:
        symbols = []
        for pair in self.pairs:
            base, quote = self.bases[pair]
            symbols.append(
                {
                    "symbol": pair,
                    "status": "TRADING",
                    "baseAsset": base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "orderTypes": ["LIMIT", "MARKET"],
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": "0.00000001",
                            "maxPrice": "1000000.00000000",
                            "tickSize": "0.00000001",
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": "0.00000001",
                            "maxQty": "9000000.00000000",
                            "stepSize": "0.00000001",
                        },
                    ],
                    "permissions": ["SPOT"],
                    "permissionSets": [["SPOT"]],
                }
            )
        info = {
            "timezone": "UTC",
            "serverTime": int(datetime.now(UTC).timestamp() * 1000),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                }
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }
        return Answer(200, json.dumps(info).encode())

    def _klines(self, query: dict[str, str]) -> Answer:
        pair, interval = query.get("symbol", ""), query.get("interval", "")
        if interval not in INTERVAL_MS:
            return _error(-1120, "Invalid interval.")
        limit = int(query.get("limit", "500"))
        if not 1 <= limit <= MAX_LIMIT:
            return _error(-1130, "Data sent for parameter 'limit' is not valid.")
        if pair not in self.pairs:
            return _error(-1121, "Invalid symbol.")
        start = int(query.get("startTime", "0"))
        end = int(query.get("endTime", str(2**62)))
        released = None if self.released is None else _ms(pd.Timestamp(self.released))
        rows = [
            row
            for row in self.klines.get((pair, interval), [])
            if start <= int(str(row[0])) <= end
            and (released is None or int(str(row[0])) <= released)
        ]
        return Answer(200, json.dumps(rows[:limit], separators=(",", ":")).encode())

    def fault_answer(self, fault: Fault, retry_after: float | None, normal: Answer) -> Answer:
        if fault == "unknown_symbol":
            return _error(-1121, "Invalid symbol.")
        if fault in ("rate_limit", "banned"):
            status = 429 if fault == "rate_limit" else 418
            headers = (("Retry-After", f"{retry_after:g}"),) if retry_after is not None else ()
            body = {"code": -1003, "msg": "Too much request weight used; current limit is 6000."}
            return Answer(status, json.dumps(body).encode(), headers=headers)
        if fault == "html":
            return Answer(502, HTML_502, "text/html")
        if fault == "truncated":
            return Answer(200, truncated(normal.body))
        if fault == "empty":
            return Answer(200, b"")
        return _error(-1000, "An unknown error occurred while processing the request.")


def _error(code: int, msg: str) -> Answer:
    return Answer(400, json.dumps({"code": code, "msg": msg}).encode())
