"""Benchmark: load every shipped dataset into a fresh store, then merge a year of
NASDAQ-100 daily bars twice (the second time all duplicates).

Run ``python benchmarks/bench_data_load.py [--db URL]`` (default: a temporary SQLite
file; ``--db`` names an *empty* database, e.g. a scratch PostgreSQL one). Targets: the
shipped data well under 10 s; merging an already-loaded year, all duplicates, <= 1 s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ttg_lab.market.bars import ImportedBars
from ttg_lab.market.loader import load_bars, load_shipped
from ttg_lab.market.shipped import DEFAULT_DATA_DIR, read_shipped
from ttg_lab.store.database import Store

TARGET_SECONDS = 10.0
MERGE_TARGET_SECONDS = 1.0


def year_of_daily() -> ImportedBars:
    """The shipped NASDAQ-100 symbols over the 252 weekdays from 2024-01-02: a seeded
    random walk (a real year's size; the values do not matter here)."""
    symbols = sorted(read_shipped("us_daily", DEFAULT_DATA_DIR)["symbol"].unique())
    days = pd.bdate_range("2024-01-02", periods=252)
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (len(symbols), len(days))), axis=1))
    opens = close * np.exp(rng.normal(0, 0.005, close.shape))
    frame = pd.DataFrame(
        {
            "symbol": np.repeat(symbols, len(days)),
            "ts": np.tile(days.to_numpy(), len(symbols)),
            "open": opens.ravel(),
            "high": np.maximum(opens, close).ravel() * 1.01,
            "low": np.minimum(opens, close).ravel() * 0.99,
            "close": close.ravel(),
            "volume": rng.integers(1_000_000, 50_000_000, close.size).astype(float),
        }
    )
    return ImportedBars(frame, "1d", "bench: a year of NASDAQ-100 daily")


def run(store: Store) -> None:
    """Time the shipped load, its idle repeat, and a year's merge twice."""
    store.migrate()
    started = time.perf_counter()
    loaded = load_shipped(store, DEFAULT_DATA_DIR)
    seconds = time.perf_counter() - started
    again = time.perf_counter()
    load_shipped(store, DEFAULT_DATA_DIR)
    idle = time.perf_counter() - again
    year = year_of_daily()
    first = time.perf_counter()
    added = load_bars(store, "bench-year", "us", year)
    first_seconds = time.perf_counter() - first
    merge = time.perf_counter()
    repeat = load_bars(store, "bench-year", "us", year)
    merge_seconds = time.perf_counter() - merge
    for name, rows in loaded.items():
        print(f"{name:14s} {rows:8d} rows")
    total = sum(loaded.values())
    verdict = "OK" if seconds < TARGET_SECONDS else "TOO SLOW"
    rate = total / seconds
    print(f"{'total':14s} {total:8d} rows in {seconds:.2f} s ({rate:,.0f} rows/s) {verdict}")
    print(f"second load_shipped (all unchanged, skipped): {idle:.2f} s")
    print(f"a year of NASDAQ-100 daily, new: {added.added:,} bars added in {first_seconds:.2f} s")
    verdict = "OK" if merge_seconds <= MERGE_TARGET_SECONDS else "TOO SLOW"
    print(
        f"the same year again, all duplicates: {repeat.skipped:,} skipped, "
        f"{repeat.added} added in {merge_seconds:.2f} s {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", help="URL of an empty database (default: temporary SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        store = Store(args.db or f"sqlite:///{Path(scratch) / 'bench.db'}")
        try:
            run(store)
        finally:
            store.dispose()


if __name__ == "__main__":
    main()
