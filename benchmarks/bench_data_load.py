"""Benchmark: load every shipped dataset into a fresh temporary SQLite store.

Run ``python benchmarks/bench_data_load.py``; the target is well under 10 s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ttg_lab.market.loader import load_shipped
from ttg_lab.market.shipped import DEFAULT_DATA_DIR
from ttg_lab.store.database import Store

TARGET_SECONDS = 10.0


def main() -> None:
    """Migrate a fresh SQLite store, load all shipped data, print rows and seconds."""
    with tempfile.TemporaryDirectory() as scratch:
        store = Store(f"sqlite:///{Path(scratch) / 'bench.db'}")
        store.migrate()
        started = time.perf_counter()
        loaded = load_shipped(store, DEFAULT_DATA_DIR)
        seconds = time.perf_counter() - started
        again = time.perf_counter()
        load_shipped(store, DEFAULT_DATA_DIR)
        idle = time.perf_counter() - again
        store.dispose()
    for name, rows in loaded.items():
        print(f"{name:14s} {rows:8d} rows")
    total = sum(loaded.values())
    verdict = "OK" if seconds < TARGET_SECONDS else "TOO SLOW"
    rate = total / seconds
    print(f"{'total':14s} {total:8d} rows in {seconds:.2f} s ({rate:,.0f} rows/s) {verdict}")
    print(f"second load_shipped (all unchanged, skipped): {idle:.2f} s")


if __name__ == "__main__":
    main()
