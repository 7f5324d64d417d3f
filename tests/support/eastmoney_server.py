"""An eastmoney kline test server: ``/api/qt/stock/kline/get`` as akshare's
``stock_zh_a_hist`` sees it, the klines built from the shipped A-share bars.

Answers are eastmoney's shape: ``{"rc":0,"rt":17,"svr":...,"lt":1,"full":0,"dlmkts":"",
"data":{"code","market","name","decimal","dktotal","preKPrice","klines":[...]}}`` with
each kline ``"date,open,close,high,low,volume,amount,amplitude,pct,change,turnover"``:
volume in lots (the store's shares / 100), 60-minute bars labelled by their END (the
store's 09:30 bar is ``10:30``), prices as stored (raw). ``secid``, ``klt`` (101, 60),
``beg`` and ``end`` (days, inclusive) are honoured; an unknown ``secid`` gets
``"data": null`` as eastmoney answers. The amount, amplitude and other derived fields are
made up from the bar (the lab does not read them).

Bad answers (:meth:`KlineServer.fail`): ``unknown_symbol`` (``data`` null), ``error``
(``rc`` 102), ``rate_limit`` HTTP 429, ``html`` an HTML 502 page, ``truncated``, ``empty``.
"""

from __future__ import annotations

import json

import pandas as pd

from support.kline_server import HTML_502, Answer, Fault, KlineServer, Route, truncated
from ttg_lab.market.shipped import read_shipped

DATASETS = {"101": "cn_daily", "60": "cn_hourly"}
"""The shipped dataset each ``klt`` is built from."""
SECIDS = {"SH": "1", "SZ": "0", "BJ": "0"}


def _number(value: float) -> str:
    return repr(float(value))


class EastmoneyServer(KlineServer):
    """The server (see the module); ``frames`` overrides the shipped bars by ``klt``."""

    data_path = "/api/qt/stock/kline/get"

    def __init__(self, frames: dict[str, pd.DataFrame] | None = None) -> None:
        super().__init__()
        given = frames or {klt: read_shipped(name) for klt, name in DATASETS.items()}
        self.bars: dict[tuple[str, str], pd.DataFrame] = {}
        for klt, frame in given.items():
            for symbol, group in frame.groupby("symbol", sort=True):
                code, _, exchange = str(symbol).partition(".")
                self.bars[(f"{SECIDS[exchange]}.{code}", klt)] = group.reset_index(drop=True)

    def routes(self) -> dict[str, Route]:
        return {self.data_path: self._klines}

    def _klines(self, query: dict[str, str]) -> Answer:
        secid, klt = query.get("secid", ""), query.get("klt", "")
        bars = self.bars.get((secid, klt))
        if bars is None:
            return _document(None)
        begin = pd.Timestamp(query.get("beg", "19000101"))
        end = pd.Timestamp(query.get("end", "20500101"))
        day = bars["ts"].dt.normalize()
        shown = bars[(day >= begin) & (day <= end)]
        if self.released is not None:
            shown = shown[shown["ts"] <= pd.Timestamp(self.released)]
        step = pd.Timedelta(minutes=60) if klt == "60" else pd.Timedelta(0)
        klines = []
        previous: float | None = None
        for bar in shown.itertuples():
            label = bar.ts + step
            stamp = f"{label:%Y-%m-%d %H:%M}" if klt == "60" else f"{label:%Y-%m-%d}"
            lots = bar.volume / 100
            base = previous if previous is not None else bar.open
            change = bar.close - base
            fields = [
                stamp,
                _number(bar.open),
                _number(bar.close),
                _number(bar.high),
                _number(bar.low),
                _number(lots),
                f"{bar.volume * bar.close:.2f}",
                f"{(bar.high - bar.low) / base * 100:.2f}",
                f"{change / base * 100:.2f}",
                f"{change:.2f}",
                "0.10",
            ]
            klines.append(",".join(fields))
            previous = bar.close
        code = secid.partition(".")[2]
        data = {
            "code": code,
            "market": int(secid.partition(".")[0]),
            "name": code,
            "decimal": 2,
            "dktotal": len(bars),
            "preKPrice": float(shown["open"].iloc[0]) if len(shown) else 0.0,
            "klines": klines,
        }
        return _document(data)

    def fault_answer(self, fault: Fault, retry_after: float | None, normal: Answer) -> Answer:
        if fault == "unknown_symbol":
            return _document(None)
        if fault == "error":
            return Answer(200, json.dumps({"rc": 102, "rt": 17, "data": None}).encode())
        if fault in ("rate_limit", "banned"):
            headers = (("Retry-After", f"{retry_after:g}"),) if retry_after is not None else ()
            return Answer(429, b"Too Many Requests", "text/plain", headers)
        if fault == "html":
            return Answer(502, HTML_502, "text/html")
        if fault == "truncated":
            return Answer(200, truncated(normal.body))
        return Answer(200, b"")


def _document(data: dict[str, object] | None) -> Answer:
    body = {"rc": 0, "rt": 17, "svr": 181669449, "lt": 1, "full": 0, "dlmkts": "", "data": data}
    return Answer(200, json.dumps(body, ensure_ascii=False).encode(), "text/plain; charset=UTF-8")
