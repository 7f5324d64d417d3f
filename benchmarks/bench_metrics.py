"""Metrics speed: one run of ~10 years of minute bars (1M points), the ratio to
quantstats on the same series (target < 1 s), and a leaderboard over 1,000 runs
(target < 2 s).

The minute series is synthetic but shaped by real data: its returns are resampled from
the shipped NASDAQ-100 hourly bars, scaled to minute volatility.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from _common import fresh_lab

from ttg_lab.lab import Lab
from ttg_lab.leaderboard import leaderboard
from ttg_lab.metrics import compute_metrics
from ttg_lab.metrics.compute import bar_returns
from ttg_lab.store.schema import TradingModel, TradingRun

MINUTES_PER_YEAR = 252 * 390


def minute_series(lab: Lab, n: int) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    frame = lab.data.list()
    del frame
    from ttg_lab.market.cache import data_fingerprint, price_index

    index = price_index(lab.store, "us", "60min", data_fingerprint(lab.store, "us", "60min"))
    real = np.concatenate([np.diff(np.log(index.bars(s).close)) for s in index.symbols[:20]])
    rng = np.random.default_rng(7)
    draws = rng.choice(real, size=n) / np.sqrt(60)
    times = pd.date_range("2015-01-02 09:30", periods=n, freq="min")
    equity = pd.Series(1_000_000 * np.exp(np.cumsum(draws)), index=times)
    bench = pd.Series(500 * np.exp(np.cumsum(rng.choice(real, size=n) / np.sqrt(60))), index=times)
    picks = np.sort(rng.choice(n, size=20_000, replace=False))
    ledger = pd.DataFrame(
        {
            "step_index": picks,
            "ts": times[picks],
            "action": np.where(np.arange(len(picks)) % 2 == 0, "buy", "sell"),
            "symbol": "SPY",
            "quantity": 10.0,
            "fill_price": bench.to_numpy()[picks],
            "fees": 1.0,
            "order_id": [f"o{i}" for i in range(len(picks))],
            "status": "filled",
        }
    )
    return equity, bench, ledger


def bench_minute_metrics(lab: Lab) -> None:
    import quantstats as qs

    n = 10 * MINUTES_PER_YEAR  # 982,800 bars
    equity, bench, ledger = minute_series(lab, n)
    start = time.perf_counter()
    metrics = compute_metrics(equity, 1_000_000.0, ledger, MINUTES_PER_YEAR, bench, "SPY")
    ours = time.perf_counter() - start
    returns = pd.Series(
        bar_returns(np.concatenate([[1_000_000.0], equity.to_numpy()])), index=equity.index
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qs_values = [
            qs.stats.sharpe(returns, periods=MINUTES_PER_YEAR),
            qs.stats.sortino(returns, periods=MINUTES_PER_YEAR),
            qs.stats.volatility(returns, periods=MINUTES_PER_YEAR),
            qs.stats.max_drawdown(returns),
            qs.stats.cagr(returns, periods=MINUTES_PER_YEAR),
        ]
    theirs = time.perf_counter() - start
    print(
        f"metrics of {n:,} minute bars with 20,000 fills: {ours:.2f} s (target < 1 s), "
        f"all {len(metrics)} keys incl. round trips and a bootstrap interval"
    )
    print(
        f"quantstats, 5 of those metrics on the same returns: {theirs:.2f} s "
        f"(ours / quantstats = {ours / theirs:.2f})"
    )
    print(f"  check: sharpe {metrics['sharpe']:.6f} vs quantstats {qs_values[0]:.6f}")


def bench_leaderboard(lab: Lab) -> None:
    model = lab.models.create("probe", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    run = lab.start_run(model, path="direct", background=False)
    template = run.info
    with lab.store.session() as session:
        base = session.get(TradingRun, run.id)
        assert base is not None
        metrics = dict(base.metrics)
        rng = np.random.default_rng(0)
        models = [
            TradingModel(
                owner_id=lab.user.id,
                name=f"m{i}",
                signature=f"bench-m{i}",
                market="us",
                initial_cash=100_000.0,
                ai_model_id="baseline/random",
            )
            for i in range(100)
        ]
        session.add_all(models)
        session.flush()
        for i in range(1000):
            jitter = {
                k: (v * (1 + rng.normal(0, 0.2)) if isinstance(v, float) else v)
                for k, v in metrics.items()
            }
            session.add(
                TradingRun(
                    model_id=models[i % 100].id,
                    run_number=i // 100 + 1,
                    status="completed",
                    mode="daily",
                    period_start=template.start,
                    period_end=template.end,
                    metrics=jitter,
                )
            )
    start = time.perf_counter()
    board = leaderboard(lab.store)
    wall = time.perf_counter() - start
    print(
        f"leaderboard over 1,001 runs of 101 models: {wall:.2f} s (target < 2 s), "
        f"{len(board)} rows, 10 runs per model with bootstrap intervals"
    )


def main() -> None:
    lab = fresh_lab()
    bench_minute_metrics(lab)
    bench_leaderboard(lab)


if __name__ == "__main__":
    main()
