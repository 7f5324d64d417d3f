"""Charts of stored runs for the callers that hold a lab and run ids.

Each function reads its runs through the lab (``lab.run(id).chart(...)``, the one place a
run is read for a figure: :meth:`ttg_lab.run.Run.chart`) and hands the
:class:`~ttg_lab.charts.figures.ChartRun` to :mod:`ttg_lab.charts.figures`; one run's
charts are also ``lab.run(id).plot.*``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from ttg_lab.charts import figures
from ttg_lab.charts.figures import ChartRun

if TYPE_CHECKING:
    from ttg_lab.lab import Lab


def chart_run(
    lab: Lab, run_id: int, *, fills: bool = False, prices: bool = False, benchmark: bool = False
) -> ChartRun:
    """Run ``run_id`` as the figures draw it (raises NotFoundError naming the id), with
    its fills, its price index and its benchmark when asked for."""
    return lab.run(run_id).chart(fills=fills, prices=prices, benchmark=benchmark)


def equity_curves(
    lab: Lab, run_ids: Sequence[int], benchmark: bool = True, normalise: bool = True
) -> go.Figure:
    """Equity of several runs against their benchmarks (see :func:`figures.equity_curves`)."""
    ids = list(dict.fromkeys(run_ids))
    runs = [chart_run(lab, run_id, benchmark=benchmark) for run_id in ids]
    return figures.equity_curves(runs, normalise)


def drawdown(lab: Lab, run_id: int) -> go.Figure:
    """The underwater curve of a run (see :func:`figures.drawdown`)."""
    return lab.run(run_id).plot.drawdown()


def allocation(lab: Lab, run_id: int, top: int = 10) -> go.Figure:
    """Cash and position values of a run at each bar (see :func:`figures.allocation`)."""
    return lab.run(run_id).plot.allocation(top)


def trades_on_price(lab: Lab, run_id: int, symbol: str) -> go.Figure:
    """A symbol's bars with a run's fills (see :func:`figures.trades_on_price`)."""
    return lab.run(run_id).plot.trades(symbol)


def most_traded_symbol(lab: Lab, run_id: int) -> str | None:
    """The symbol with the most fills in a run (ties: larger traded value), or None."""
    return figures.most_traded_symbol(chart_run(lab, run_id, fills=True).filled())
