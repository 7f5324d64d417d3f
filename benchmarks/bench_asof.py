"""As-of price lookups: median time of one clock-bound read (target < 50 µs)."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from functools import partial

from _common import fresh_lab

from ttg_lab.market.asof import AsOfView
from ttg_lab.market.cache import data_fingerprint, price_index


def main() -> None:
    lab = fresh_lab()
    index = price_index(lab.store, "us", "1d", data_fingerprint(lab.store, "us", "1d"))
    rng = random.Random(0)
    symbols = index.symbols
    calendar = index.calendar
    samples: dict[str, list[float]] = {
        "open (today)": [],
        "close (a past day)": [],
        "last close": [],
        "20 past closes": [],
    }
    for _ in range(20_000):
        i = rng.randrange(1, len(calendar))
        view = AsOfView(index, calendar[i])
        symbol = rng.choice(symbols)
        past = calendar[rng.randrange(0, i)]
        calls: dict[str, Callable[[], object]] = {
            "open (today)": partial(view.open, symbol),
            "close (a past day)": partial(view.value, symbol, past, "close"),
            "last close": partial(view.last_close, symbol),
            "20 past closes": partial(view.closes, symbol, 20),
        }
        for name, call in calls.items():
            start = time.perf_counter_ns()
            call()
            samples[name].append((time.perf_counter_ns() - start) / 1000)
    print(f"as-of lookups over {len(symbols)} symbols x {len(calendar)} days (20,000 each)")
    for name, values in samples.items():
        print(
            f"  {name:<20} median {statistics.median(values):6.2f} µs   "
            f"p99 {statistics.quantiles(values, n=100)[98]:6.2f} µs   (target median < 50 µs)"
        )


if __name__ == "__main__":
    main()
