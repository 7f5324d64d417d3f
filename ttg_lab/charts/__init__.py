"""Plotly charts of runs, leaderboards and rule attribution, for notebooks and reports.

:mod:`~ttg_lab.charts.figures` draws from frames, :mod:`~ttg_lab.charts.theme` is the
shared look, and :mod:`~ttg_lab.charts.runs` reads stored runs through a lab for the
callers: ``charts.equity_curves(lab, [7, 8])``, ``charts.drawdown(lab, 7)``. Text that
comes from the store is HTML-escaped before it reaches a figure.
"""

from __future__ import annotations

from ttg_lab.charts.figures import ChartRun, leaderboard_bars, rule_attribution
from ttg_lab.charts.runs import (
    allocation,
    chart_run,
    drawdown,
    equity_curves,
    most_traded_symbol,
    trades_on_price,
)
from ttg_lab.charts.theme import TEMPLATE, metric_unit, model_colours

__all__ = [
    "TEMPLATE",
    "ChartRun",
    "allocation",
    "chart_run",
    "drawdown",
    "equity_curves",
    "leaderboard_bars",
    "metric_unit",
    "model_colours",
    "most_traded_symbol",
    "rule_attribution",
    "trades_on_price",
]
