"""Metrics of stored runs: load what a run wrote, compute, and keep the result on the run.

A run's metrics are computed when it ends and stored with it (``trading_runs.metrics``),
so leaderboards over thousands of runs read numbers instead of recomputing equity curves.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import update

from ttg_lab.engine.ledger import CITED_COLUMNS
from ttg_lab.engine.reader import equity_curve, equity_frame, ledger_frame
from ttg_lab.engine.snapshot import RunSnapshot
from ttg_lab.errors import NotFoundError
from ttg_lab.llm.spend import run_llm_costs
from ttg_lab.market.asof import PriceIndex
from ttg_lab.market.cache import data_fingerprint, price_index
from ttg_lab.market.markets import get_market
from ttg_lab.metrics.compute import compute_metrics, periods_per_year
from ttg_lab.store.database import Store
from ttg_lab.store.schema import TradingRun

log = logging.getLogger(__name__)


def market_index(store: Store, market: str, interval: str) -> PriceIndex | None:
    """The price index of a market's interval (None when that data is not loaded)."""
    try:
        return price_index(store, market, interval, data_fingerprint(store, market, interval))
    except NotFoundError:
        return None


def benchmark_bars(
    store: Store, market: str, interval: str, index: PriceIndex | None = None
) -> pd.DataFrame | None:
    """Opens and closes of the market's benchmark at the interval's bars (None if the
    benchmark is not in that data)."""
    index = index or market_index(store, market, interval)
    spec = get_market(market)
    if index is None or not index.has_symbol(spec.benchmark):
        return None
    bars = index.bars(spec.benchmark)
    return pd.DataFrame({"open": bars.open, "close": bars.close}, index=pd.DatetimeIndex(bars.ts))


def benchmark_closes(store: Store, market: str, interval: str) -> pd.Series | None:
    """Closes of the market's benchmark at the interval's bars (None if not in the data)."""
    bars = benchmark_bars(store, market, interval)
    return None if bars is None else bars["close"]


def run_metrics(store: Store, run_id: int) -> dict[str, Any]:
    """Every metric of run ``run_id`` from its equity curve, ledger and LLM usage."""
    with store.session() as session:
        run = session.get(TradingRun, run_id)
        if run is None:
            raise NotFoundError(f"no run {run_id}")
        snap = RunSnapshot.from_json(run.strategy_snapshot)
        llm = {
            "llm_calls": run.llm_calls,
            "prompt_tokens": run.prompt_tokens,
            "completion_tokens": run.completion_tokens,
            "llm_cost": run.llm_cost,
        }
        spend = run_llm_costs(session, [run_id])[run_id]
    steps = equity_frame(store, run_id)
    ledger = ledger_frame(store, run_id, CITED_COLUMNS)
    market, interval = snap.model.market, snap.interval
    index = market_index(store, market, interval)
    gross = None if index is None else _gross_value(index, steps)
    metrics = metrics_for(
        store,
        market,
        interval,
        equity_curve(steps),
        snap.initial_cash,
        ledger,
        gross,
        llm,
        index,
    )
    if not spend.known:  # the sum recorded is not the spend: unknown, never 0.00
        metrics.update(llm_cost=None, return_per_llm_dollar=None)
    return metrics


def metrics_for(
    store: Store,
    market: str,
    interval: str,
    equity: pd.Series,
    initial_cash: float,
    ledger: pd.DataFrame,
    gross: pd.Series | None = None,
    llm: dict[str, float] | None = None,
    index: PriceIndex | None = None,
) -> dict[str, Any]:
    """Metrics of an equity curve of ``market``/``interval``, against its benchmark bought
    at the first bar's open, as the run's own orders fill."""
    bench = benchmark_bars(store, market, interval, index)
    entry = None
    if bench is not None and len(equity) and equity.index[0] in bench.index:
        entry = float(bench["open"].loc[equity.index[0]])
    return compute_metrics(
        equity,
        initial_cash,
        ledger,
        periods_per_year(market, interval),
        None if bench is None else bench["close"],
        get_market(market).benchmark,
        gross,
        llm,
        entry,
    )


def _gross_value(index: PriceIndex, steps: pd.DataFrame) -> pd.Series:
    """Gross position value at each bar: sum of |quantity| x close."""
    stamps = [t.to_pydatetime() for t in pd.DatetimeIndex(steps["ts"])]
    values = []
    for ts, holdings in zip(stamps, steps["holdings"], strict=True):
        total = 0.0
        for symbol, qty in (holdings or {}).items():
            price = index.close_at_or_before(symbol, ts)
            total += abs(float(qty)) * (price or 0.0)
        values.append(total)
    return pd.Series(values, index=pd.DatetimeIndex(stamps), dtype=float)


def jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics with times as ISO text, for the JSON column."""
    return {
        k: v.isoformat(sep=" ") if isinstance(v, datetime | pd.Timestamp) else v
        for k, v in metrics.items()
    }


def store_metrics(store: Store, run_id: int) -> dict[str, Any]:
    """Compute and keep a run's metrics; a failure is logged and stored, never raised."""
    try:
        metrics = jsonable(run_metrics(store, run_id))
    except Exception as exc:  # metrics must never turn a finished run into a failed one
        log.warning("metrics of run %s failed: %s", run_id, exc)
        metrics = {"error": f"{type(exc).__name__}: {exc}"}
    with store.session() as session:
        session.execute(update(TradingRun).where(TradingRun.id == run_id).values(metrics=metrics))
    return metrics
