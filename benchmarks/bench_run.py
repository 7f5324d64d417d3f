"""Engine speed: momentum over all NASDAQ-100 names, daily (100 days) and hourly (174 bars).

Targets: daily run < 5 s wall and < 400 MB peak RSS. Prints per-step engine time too.
"""

from __future__ import annotations

import time

from _common import fresh_lab, peak_rss_mb


def main() -> None:
    lab = fresh_lab()
    print(f"peak RSS after loading the data: {peak_rss_mb():.0f} MB")
    model = lab.models.create(
        "bench momentum",
        ai_model_id="baseline/momentum",
        initial_cash=1_000_000.0,
        parameters={"top_k": 20},
    )
    for mode in ("daily", "intraday"):
        start = time.perf_counter()
        run = lab.start_run(model, mode=mode, background=False)
        wall = time.perf_counter() - start
        info = run.info
        symbols = len(info.snapshot.tickers)
        print(
            f"{mode:<8} momentum: {symbols} symbols x {info.steps_total} steps, "
            f"{info.total_trades} fills: {wall:.2f} s wall "
            f"({wall / info.steps_total * 1000:.1f} ms/step), status {info.status}"
        )
    print(f"peak RSS: {peak_rss_mb():.0f} MB (target daily < 5 s, < 400 MB)")


if __name__ == "__main__":
    main()
