"""Charts of stored runs for the callers that hold a lab: read the frames, then draw.

The one place the charts read the store: each function reads a run through the lab
(info, equity, fills, and the prices or benchmark a figure needs) into a
:class:`~ttg_lab.charts.figures.ChartRun` and hands it to :mod:`ttg_lab.charts.figures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from ttg_lab.charts import figures
from ttg_lab.charts.figures import Benchmark, ChartRun
from ttg_lab.market.bars import MODES
from ttg_lab.market.cache import data_fingerprint, price_index
from ttg_lab.market.markets import get_market
from ttg_lab.metrics.stored import benchmark_closes

if TYPE_CHECKING:
    from ttg_lab.lab import Lab


def chart_run(
    lab: Lab, run_id: int, *, fills: bool = False, prices: bool = False, benchmark: bool = False
) -> ChartRun:
    """Run ``run_id`` as the figures draw it (raises NotFoundError naming the id), with
    its fills, its price index and its benchmark when asked for."""
    handle = lab.run(run_id)
    info = handle.info()
    snapshot = info["snapshot"]
    market = str(snapshot["model"]["market"])
    interval = str(snapshot.get("interval") or MODES[info["mode"]])
    equity = handle.equity()
    equity["ts"] = pd.to_datetime(equity["ts"])
    ledger = handle.ledger() if fills else None
    filled = None if ledger is None else ledger[ledger["status"] == "filled"]
    index = (
        price_index(lab.store, market, interval, data_fingerprint(lab.store, market, interval))
        if prices or benchmark
        else None
    )
    bench = None
    if benchmark and index is not None:
        symbol = get_market(market).benchmark
        entry = (
            index.bar_value(symbol, equity["ts"].iloc[0].to_pydatetime(), "open")
            if len(equity)
            else None
        )
        bench = Benchmark(symbol, benchmark_closes(lab.store, market, interval), entry)
    return ChartRun(
        id=int(info["id"]),
        model=str(info["model"]),
        run_number=int(info["run_number"]),
        market=market,
        interval=interval,
        initial_cash=float(snapshot["model"]["initial_cash"]),
        start=info["start"],
        end=info["end"],
        equity=equity,
        fills=None if filled is None else filled.reset_index(drop=True),
        prices=index if prices else None,
        benchmark=bench,
    )


def equity_curves(
    lab: Lab, run_ids: Sequence[int], benchmark: bool = True, normalise: bool = True
) -> go.Figure:
    """Equity of several runs against their benchmarks (see :func:`figures.equity_curves`)."""
    ids = list(dict.fromkeys(run_ids))
    runs = [chart_run(lab, run_id, benchmark=benchmark) for run_id in ids]
    return figures.equity_curves(runs, normalise)


def drawdown(lab: Lab, run_id: int) -> go.Figure:
    """The underwater curve of a run (see :func:`figures.drawdown`)."""
    return figures.drawdown(chart_run(lab, run_id))


def allocation(lab: Lab, run_id: int, top: int = 10) -> go.Figure:
    """Cash and position values of a run at each bar (see :func:`figures.allocation`)."""
    figures.check_top(top)
    return figures.allocation(chart_run(lab, run_id, prices=True), top)


def trades_on_price(lab: Lab, run_id: int, symbol: str) -> go.Figure:
    """A symbol's bars with a run's fills (see :func:`figures.trades_on_price`)."""
    return figures.trades_on_price(chart_run(lab, run_id, fills=True, prices=True), symbol)


def most_traded_symbol(lab: Lab, run_id: int) -> str | None:
    """The symbol with the most fills in a run (ties: larger traded value), or None."""
    return figures.most_traded_symbol(chart_run(lab, run_id, fills=True).filled())
