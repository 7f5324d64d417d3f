"""Bar returns of stored runs and of buy-and-hold over the same bars, many runs at once,
for the statistics that need whole series (the leaderboard's tests, the snooping test).

One query reads every run's equity curve; the benchmark's bars are read once per market
and interval. The benchmark is bought at the first bar's open, as in the run's metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import select

from ttg_lab.engine.snapshot import RunSnapshot
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
    times: pd.DatetimeIndex
    returns: np.ndarray
    benchmark: np.ndarray | None
    periods: float


def runs_returns(store: Store, run_ids: Sequence[int], market: str) -> dict[int, RunReturns]:
    """The bar returns of the runs ``run_ids`` of ``market`` (runs without steps left out)."""
    if not run_ids:
        return {}
    ids = list(run_ids)
    with store.session() as session:
        runs = session.execute(
            select(TradingRun.id, TradingRun.mode, TradingRun.strategy_snapshot).where(
                TradingRun.id.in_(ids)
            )
        ).all()
        steps = session.execute(
            select(RunStep.run_id, RunStep.ts, RunStep.equity)
            .where(RunStep.run_id.in_(ids))
            .order_by(RunStep.run_id, RunStep.step_index)
        ).all()
    frame = pd.DataFrame(steps, columns=["run_id", "ts", "equity"])
    curves = {cast(int, k): g for k, g in frame.groupby("run_id", sort=False)}
    benchmarks: dict[str, pd.DataFrame | None] = {}
    out: dict[int, RunReturns] = {}
    for run_id, mode, snapshot in runs:
        curve = curves.get(int(run_id))
        if curve is None:
            continue
        interval = MODES.get(mode, "1d")
        if interval not in benchmarks:
            benchmarks[interval] = benchmark_bars(store, market, interval)
        bench = benchmarks[interval]
        times = pd.DatetimeIndex(curve["ts"])
        cash = RunSnapshot.from_json(snapshot).initial_cash
        returns = bar_returns(np.concatenate([[cash], curve["equity"].to_numpy(dtype=float)]))
        b_values = None
        if bench is not None:
            entry = float(bench["open"].loc[times[0]]) if times[0] in bench.index else None
            b_values = benchmark_values(times, bench["close"], entry)
        out[int(run_id)] = RunReturns(
            int(run_id),
            times,
            returns,
            None if b_values is None else bar_returns(b_values),
            periods_per_year(market, interval),
        )
    return out
