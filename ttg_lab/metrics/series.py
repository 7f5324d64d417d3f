"""Bar returns of stored runs and of buy-and-hold over the same bars, many runs at once,
for the statistics that need whole series (the leaderboard's tests, the snooping test).

One query reads every run's equity curve; the benchmark's bars are read once per market
and interval. The benchmark is bought at the first bar's open, as in the run's metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import select

from ttg_lab.market.bars import MODES
from ttg_lab.metrics.compute import bar_returns, benchmark_values, periods_per_year
from ttg_lab.metrics.stored import benchmark_bars
from ttg_lab.store.database import Store
from ttg_lab.store.schema import RunStep, TradingRun


@dataclass(frozen=True)
class RunReturns:
    """A run's bar returns (from its initial cash) and, where the benchmark prices every
    bar, buy-and-hold's returns over the same bars."""

    run_id: int
    times: np.ndarray
    """The bars' times (datetime64), the same array for runs over the same bars."""
    returns: np.ndarray
    benchmark: np.ndarray | None
    periods: float


def runs_returns(store: Store, run_ids: Sequence[int], market: str) -> dict[int, RunReturns]:
    """The bar returns of the runs ``run_ids`` of ``market`` (runs without steps left out)."""
    if not run_ids:
        return {}
    ids = list(run_ids)
    cash_of = TradingRun.strategy_snapshot[("model", "initial_cash")].as_float()
    with store.session() as session:
        runs = session.execute(
            select(TradingRun.id, TradingRun.mode, cash_of).where(TradingRun.id.in_(ids))
        ).all()
        steps = session.execute(
            select(RunStep.run_id, RunStep.ts, RunStep.equity)
            .where(RunStep.run_id.in_(ids))
            .order_by(RunStep.run_id, RunStep.step_index)
        ).all()
    if not steps:
        return {}
    owners, stamps, equity = zip(*steps, strict=True)
    owner = np.array(owners, dtype=np.int64)
    times = pd.DatetimeIndex(stamps).to_numpy()
    values = np.array(equity, dtype=float)
    cuts = np.flatnonzero(np.diff(owner)) + 1
    starts, ends = np.r_[0, cuts].tolist(), np.r_[cuts, len(owner)].tolist()
    spans = {int(owner[a]): (a, b) for a, b in zip(starts, ends, strict=True)}  # run: rows
    bench_bars: dict[str, pd.DataFrame | None] = {}
    bench_returns: dict[tuple[str, bytes], np.ndarray | None] = {}  # per interval and bars
    out: dict[int, RunReturns] = {}
    for run_id, mode, cash in runs:
        if run_id not in spans:
            continue
        first, last = spans[run_id]
        interval = MODES.get(mode, "1d")
        bars = times[first:last]
        key = (interval, bars.tobytes())
        if key not in bench_returns:
            if interval not in bench_bars:
                bench_bars[interval] = benchmark_bars(store, market, interval)
            bench_returns[key] = _benchmark_returns(bench_bars[interval], pd.DatetimeIndex(bars))
        returns = bar_returns(np.concatenate([[float(cash)], values[first:last]]))
        out[int(run_id)] = RunReturns(
            int(run_id), bars, returns, bench_returns[key], periods_per_year(market, interval)
        )
    return out


def _benchmark_returns(bench: pd.DataFrame | None, times: pd.DatetimeIndex) -> np.ndarray | None:
    """Buy-and-hold's bar returns over ``times``, bought at the first bar's open."""
    if bench is None:
        return None
    entry = float(bench["open"].loc[times[0]]) if times[0] in bench.index else None
    values = benchmark_values(times, bench["close"], entry)
    return None if values is None else bar_returns(values)
