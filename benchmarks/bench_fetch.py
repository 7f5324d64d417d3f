"""Benchmark: bars fetched, validated and merged per second from a local Alpha Vantage.

Serves, from ``tests/support/alphavantage_server.py`` on 127.0.0.1, the NASDAQ-100 (the
shipped ``us_daily`` symbols) x 1 year of daily bars (``TIME_SERIES_DAILY``, full output
as a premium key gets it; the shipped 100 real days, the 152 weekdays before them
repeating those bars) and x 1 month of hourly bars (``TIME_SERIES_INTRADAY`` October 2025,
the shipped real bars). The fetch runs through the whole pipeline (HTTP, raw-answer
cache, parse, checks, merge) into a fresh SQLite store, on a simulated clock so the
provider's rate limits cost no real time (the waits they would cost are printed). Then
the year is fetched again: every answer from the cache and every bar a duplicate; and the
merge alone of the loaded year (one load, all duplicates) is timed: target <= 1 s.

Run ``python benchmarks/bench_fetch.py``. Prints figures; asserts nothing on timing.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.alphavantage_server import AlphaVantageServer

from ttg_lab.market.bars import ImportedBars
from ttg_lab.market.fetch import FetchReport, fetch_bars
from ttg_lab.market.loader import load_bars, read_price_frame
from ttg_lab.market.providers import make_provider
from ttg_lab.market.shipped import read_shipped
from ttg_lab.store.database import Store

MERGE_TARGET_SECONDS = 1.0
YEAR_DAYS = 252
MONTH = date(2025, 10, 1), date(2025, 10, 31)


class SimulatedClock:
    """Wall time at start, moved on by each wait instead of sleeping."""

    def __init__(self) -> None:
        self.time = datetime.now(UTC)
        self.waited = 0.0

    def now(self) -> datetime:
        return self.time

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        self.time += timedelta(seconds=max(0.0, seconds))
        self.waited += max(0.0, seconds)
        return False


def _series(frame: pd.DataFrame, stamp: str) -> dict[str, dict[str, str]]:
    return {
        pd.Timestamp(r.ts).strftime(stamp): {
            "1. open": f"{r.open:.4f}",
            "2. high": f"{r.high:.4f}",
            "3. low": f"{r.low:.4f}",
            "4. close": f"{r.close:.4f}",
            "5. volume": f"{int(r.volume)}",
        }
        for r in frame.sort_values("ts", ascending=False).itertuples()
    }


def year_of_daily() -> pd.DataFrame:
    """The shipped daily bars, extended back to a year of weekdays by repeating them."""
    shipped = read_shipped("us_daily")
    real_days = sorted(shipped["ts"].unique())
    days = pd.bdate_range(end=real_days[-1], periods=YEAR_DAYS)
    earlier = [d for d in days if d < real_days[0]]
    copies = []
    for i, day in enumerate(earlier):
        source = shipped[shipped["ts"] == real_days[i % len(real_days)]]
        copies.append(source.assign(ts=day))
    return pd.concat([*copies, shipped], ignore_index=True)


def write_fixtures(folder: Path, daily: pd.DataFrame, hourly: pd.DataFrame) -> None:
    """Alpha Vantage documents of the bars, as the test server reads them."""
    for symbol, bars in daily.groupby("symbol"):
        document = {
            "Meta Data": {
                "1. Information": "Daily Prices (open, high, low, close) and Volumes",
                "2. Symbol": symbol,
                "3. Last Refreshed": "",
                "4. Output Size": "Full size",
                "5. Time Zone": "US/Eastern",
            },
            "Time Series (Daily)": _series(bars, "%Y-%m-%d"),
        }
        (folder / f"TIME_SERIES_DAILY_{symbol}.json").write_text(json.dumps(document))
    for symbol, bars in hourly.groupby("symbol"):
        document = {
            "Meta Data": {
                "1. Information": "Intraday (60min) open, high, low, close prices and volume",
                "2. Symbol": symbol,
                "3. Last Refreshed": "",
                "4. Interval": "60min",
                "5. Output Size": "Full size",
                "6. Time Zone": "US/Eastern",
            },
            "Time Series (60min)": _series(bars, "%Y-%m-%d %H:%M:%S"),
        }
        (folder / f"TIME_SERIES_INTRADAY_{symbol}.json").write_text(json.dumps(document))


def timed_fetch(
    store: Store, base_url: str, symbols: list[str], interval: str, first: date, last: date,
    cache: Path,
) -> tuple[FetchReport, float, float]:  # fmt: skip
    clock = SimulatedClock()
    started = time.perf_counter()
    report = fetch_bars(
        store,
        make_provider("alphavantage", base_url),
        "us",
        symbols,
        interval,
        first,
        last,
        cache_dir=cache,
        clock=clock,
    )
    elapsed = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"fetch failed: {report.summary()}")
    return report, elapsed, clock.waited


def main() -> None:
    os.environ["ALPHAVANTAGE_API_KEY"] = "bench-local-key"  # the local server wants one
    os.environ["TTG_LAB_ALPHAVANTAGE_PREMIUM"] = "1"  # full daily output, 75 a minute
    folder = Path(tempfile.mkdtemp(prefix="ttg-bench-fetch-"))
    fixtures = folder / "fixtures"
    fixtures.mkdir()
    daily = year_of_daily()
    hourly = read_shipped("us_hourly")
    hourly = hourly[(hourly["ts"] >= pd.Timestamp(MONTH[0])) & (hourly["ts"] < "2025-11-01")]
    write_fixtures(fixtures, daily, hourly)
    symbols = sorted(daily["symbol"].unique())
    first = pd.Timestamp(daily["ts"].min()).date()
    last = pd.Timestamp(daily["ts"].max()).date()
    store = Store(f"sqlite:///{folder / 'bench.db'}")
    store.migrate()
    with AlphaVantageServer(fixtures, premium=True) as server:
        year, seconds, waits = timed_fetch(
            store, server.base_url, symbols, "1d", first, last, folder / "cache"
        )
        bars = sum(r.merge.added for r in year.results if r.merge)
        print(
            f"daily, {len(symbols)} symbols x 1 year ({first}..{last}): {bars:,} bars in "
            f"{seconds:.2f} s = {bars / seconds:,.0f} bars/s fetched, validated and merged "
            f"({year.sent} requests; the provider's limits would add {waits:.0f} s of waits)"
        )
        month, seconds, waits = timed_fetch(
            store, server.base_url, symbols, "60min", *MONTH, folder / "cache"
        )
        bars = sum(r.merge.added for r in month.results if r.merge)
        print(
            f"hourly, {len(symbols)} symbols x 1 month ({MONTH[0]:%Y-%m}): {bars:,} bars in "
            f"{seconds:.2f} s = {bars / seconds:,.0f} bars/s ({month.sent} requests; limits "
            f"would add {waits:.0f} s)"
        )
        again, seconds, _ = timed_fetch(
            store, server.base_url, symbols, "1d", first, last, folder / "cache"
        )
        skipped = sum(r.merge.skipped for r in again.results if r.merge)
        print(
            f"daily year again: {again.sent} requests, {again.reused} answers from the cache, "
            f"{skipped:,} identical bars skipped in {seconds:.2f} s ({len(symbols)} loads)"
        )
    loaded = read_price_frame(store, "us", "1d")
    started = time.perf_counter()
    result = load_bars(store, "bench-year", "us", ImportedBars(loaded, "1d", "bench"))
    merge = time.perf_counter() - started
    verdict = "ok" if merge <= MERGE_TARGET_SECONDS else "SLOWER than the target"
    print(
        f"merge of the loaded year, all duplicates ({result.skipped:,} skipped, "
        f"{result.added} added): {merge:.2f} s (target <= {MERGE_TARGET_SECONDS:g} s: {verdict})"
    )
    store.dispose()


if __name__ == "__main__":
    main()
