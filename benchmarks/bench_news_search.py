"""News search: median time of one as-of search (target < 5 ms over ~10k items).

Over the shipped corpus, and over a synthetic 10k-item corpus made by repeating the
shipped items with shifted dates and distinct URLs.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import replace
from datetime import timedelta

from ttg_lab.news.items import News
from ttg_lab.news.search import NewsIndex
from ttg_lab.news.shipped import read_shipped_news

QUERIES = (
    "nvidia earnings",
    "bitcoin price stablecoin",
    "fed rate cut",
    "stock market today",
    "apple iphone demand",
    "china a股 4000点",
    "semiconductor export rules",
    "crowdstrike",
)
SYMBOLS = (None, None, ["NVDA"], ["COIN", "BTC-USDT"])


def synthetic(items: list[News], size: int) -> list[News]:
    """``size`` items: the shipped ones repeated, each copy 9 days later, with new URLs."""
    result: list[News] = []
    copy = 0
    while len(result) < size:
        shift = timedelta(days=9 * copy)
        for item in items:
            result.append(
                replace(item, url=f"{item.url}#copy{copy}", published_at=item.published_at + shift)
            )
        copy += 1
    return result[:size]


def bench(name: str, items: list[News], searches: int = 3000) -> None:
    start = time.perf_counter()
    index = NewsIndex(items)
    built = time.perf_counter() - start
    first = min(n.published_at for n in items)
    last = max(n.published_at for n in items)
    rng = random.Random(0)
    print(f"{name}: {len(items)} items, index built in {(built * 1000):.0f} ms")
    for label, clocks in (
        ("clocks across the span", lambda: first + (last - first) * rng.random()),
        ("clock after every item", lambda: last + timedelta(days=1)),
    ):
        samples = []
        found = 0
        for _ in range(searches):
            clock, query, symbols = clocks(), rng.choice(QUERIES), rng.choice(SYMBOLS)
            t0 = time.perf_counter()
            hits = index.search(query, clock, 5, symbols)
            samples.append(time.perf_counter() - t0)
            found += len(hits)
        samples.sort()
        print(
            f"  {label}: median {statistics.median(samples) * 1000:.3f} ms, "
            f"p95 {samples[int(len(samples) * 0.95)] * 1000:.3f} ms, "
            f"max {samples[-1] * 1000:.3f} ms, {found / searches:.1f} hits per search"
        )


def main() -> None:
    shipped = read_shipped_news()
    bench("shipped corpus", shipped)
    bench("synthetic corpus", synthetic(shipped, 10_000))


if __name__ == "__main__":
    main()
