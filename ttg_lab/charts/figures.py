"""Plotly figures of runs, leaderboards and rule attribution, drawn from frames.

Every function takes what it draws (a :class:`ChartRun` per run, a leaderboard or an
attribution table) and fetches nothing: :mod:`ttg_lab.charts.runs` reads the frames
through the lab for the callers. Each returns a ``plotly.graph_objects.Figure`` in the
dark template (:mod:`ttg_lab.charts.theme`) with readable axis titles and percent or
money formats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import plotly.graph_objects as go

from ttg_lab.charts.theme import (
    BENCHMARK_COLOUR,
    CASH_COLOUR,
    FILL_ACTIONS,
    FILL_STYLE,
    GAIN_COLOUR,
    LOSS_COLOUR,
    OTHER_COLOUR,
    PALETTE,
    RETURN_METRICS,
    axis_format,
    hover_format,
    layout,
    metric_unit,
    model_colours,
    note,
    text,
)
from ttg_lab.engine.equity import drawdowns
from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.market.asof import PriceIndex
from ttg_lab.market.markets import get_market
from ttg_lab.metrics.compute import deepest_drawdown


@dataclass(frozen=True)
class Benchmark:
    """A run's market benchmark over the run's bars: its closes at the interval's bars
    (None when the data lacks it) and its open at the run's first bar (the entry)."""

    symbol: str
    closes: pd.Series | None
    entry: float | None


@dataclass(frozen=True)
class ChartRun:
    """One run as the figures draw it: who it is and its frames.

    ``equity`` has one row per bar (``ts`` as datetimes, ``equity``, ``cash``,
    ``holdings``). The filled ledger rows, the prices and the benchmark are read only for
    the figures that need them (None otherwise).
    """

    id: int
    model: str
    run_number: int
    market: str
    interval: str
    initial_cash: float
    start: datetime
    end: datetime
    equity: pd.DataFrame
    fills: pd.DataFrame | None = None
    prices: PriceIndex | None = None
    benchmark: Benchmark | None = None

    @property
    def label(self) -> str:
        return f"{self.model} #{self.run_number}"

    @property
    def currency(self) -> str:
        return get_market(self.market).currency

    def price_index(self) -> PriceIndex:
        """The prices this run traded against (read with the run for price figures)."""
        if self.prices is None:
            raise ValidationError(f"run {self.id} was read without its prices for this chart")
        return self.prices

    def filled(self) -> pd.DataFrame:
        """The run's filled ledger rows (read with the run for trade figures)."""
        if self.fills is None:
            raise ValidationError(f"run {self.id} was read without its fills for this chart")
        return self.fills


def equity_curves(runs: Sequence[ChartRun], normalise: bool = True) -> go.Figure:
    """Equity of several runs, one point per bar, each against buy-and-hold of its own
    market's benchmark over its own bars (runs read with their benchmark).

    With ``normalise`` each curve is equity / initial cash (1.0 = the starting money), so
    runs with different cash, markets and periods compare; otherwise money, which needs
    runs in one currency. A run's benchmark is bought at the open of that run's first bar
    and follows that run's bars (so its last point is 1 + the run's ``benchmark_return``);
    runs of one market and interval over the same bars share one benchmark line. Where
    the data lacks a benchmark, the chart says so instead.
    """
    if not runs:
        raise ValidationError("equity_curves needs at least one run id")
    currencies = sorted({run.currency for run in runs})
    if not normalise and len(currencies) > 1:
        raise ValidationError(
            f"runs {', '.join(str(run.id) for run in runs)} are in different currencies "
            f"({', '.join(currencies)}): draw them normalised (growth of 1) instead of in money"
        )
    colours = model_colours(run.model for run in runs)
    seen: dict[str, int] = {}
    fig = go.Figure()
    for run in runs:
        frame = run.equity
        cash = run.initial_cash
        values = frame["equity"].to_numpy(dtype=float)
        dash = ("solid", "dash", "dot", "dashdot", "longdash")[seen.get(run.model, 0) % 5]
        seen[run.model] = seen.get(run.model, 0) + 1
        label = text(run.label)
        if normalise:
            y = values / cash
            hover = f"{label}: %{{y:.4f}} (%{{customdata:+.2%}})<extra></extra>"
            custom: Any = y - 1.0
        else:
            y = values
            hover = f"{label}: %{{y:,.2f}} (%{{customdata:+.2%}})<extra></extra>"
            custom = values / cash - 1.0
        fig.add_trace(
            go.Scatter(
                x=frame["ts"],
                y=y,
                customdata=custom,
                mode="lines",
                name=label,
                line={"color": colours[run.model], "dash": dash, "width": 2},
                hovertemplate=hover,
                meta={"run_id": run.id},
            )
        )
    with_benchmark = [run for run in runs if run.benchmark is not None]
    if with_benchmark:
        _add_benchmarks(fig, with_benchmark, normalise, colours)
    layout(
        fig,
        "Equity vs buy-and-hold of the benchmark" if with_benchmark else "Equity",
        xaxis_title="date",
        yaxis_title="growth of 1 (start = 1.0)" if normalise else f"equity ({currencies[0]})",
        yaxis_tickformat=".2f" if normalise else ",.0f",
    )
    return fig


def _add_benchmarks(
    fig: go.Figure, runs: list[ChartRun], normalise: bool, colours: dict[str, str]
) -> None:
    """One benchmark line per market, interval and set of bars among the runs (and per
    starting cash when drawn in money), each labelled with the runs it belongs to."""
    groups: dict[tuple[Any, ...], list[ChartRun]] = {}
    notes: list[str] = []
    for run in runs:
        stamps = tuple(run.equity["ts"])
        if not stamps:
            notes.append(f"{run.label} has no bars yet")
            continue
        cash = None if normalise else run.initial_cash
        groups.setdefault((run.market, run.interval, stamps, cash), []).append(run)
    for served in groups.values():
        first = served[0]
        times = pd.DatetimeIndex(first.equity["ts"])
        growth = benchmark_growth(first, times)
        symbol = get_market(first.market).benchmark
        if isinstance(growth, str):
            notes.append(growth)
            continue
        y = growth if normalise else growth * first.initial_cash
        name = f"{symbol} buy-and-hold"
        if len(groups) > 1:
            name += " for " + ", ".join(run.label for run in served)
        number = "%{y:.4f}" if normalise else "%{y:,.2f}"
        fig.add_trace(
            go.Scatter(
                x=times,
                y=y,
                customdata=growth - 1.0,
                mode="lines",
                name=text(name),
                line={
                    "color": BENCHMARK_COLOUR if len(groups) == 1 else colours[first.model],
                    "dash": "dot",
                    "width": 2,
                },
                hovertemplate=f"{text(name)}: {number} (%{{customdata:+.2%}})<extra></extra>",
                meta={"benchmark": symbol, "run_ids": [run.id for run in served]},
            )
        )
    for i, message in enumerate(dict.fromkeys(notes)):
        note(fig, message, y=0.5 - 0.08 * i)


def benchmark_growth(run: ChartRun, times: pd.DatetimeIndex) -> npt.NDArray[np.float64] | str:
    """Growth of 1 in the run's market benchmark at the run's bars, bought at the first
    bar's open like the run's own orders (as ``benchmark_return``); or why there is none."""
    bench_of = run.benchmark
    symbol = get_market(run.market).benchmark
    if bench_of is None or bench_of.closes is None:
        return f"benchmark {symbol} is not in the {run.market} {run.interval} data"
    bench = bench_of.closes.reindex(times).ffill().bfill().to_numpy(dtype=float)
    if not (np.all(np.isfinite(bench)) and np.all(bench > 0)):
        return f"benchmark {symbol} has no prices over the bars of {run.label}"
    entry = bench_of.entry
    growth: npt.NDArray[np.float64] = bench / (entry if entry and entry > 0 else bench[0])
    return growth


def drawdown(run: ChartRun) -> go.Figure:
    """The underwater curve: equity below its running peak at each bar, in percent.

    The running peak starts at the initial cash, as ``max_drawdown`` in the metrics does,
    and the deepest drawdown's peak and trough are marked.
    """
    frame = run.equity
    values = np.concatenate([[run.initial_cash], frame["equity"].to_numpy(dtype=float)])
    depth = drawdowns(values)[1:]
    colour = model_colours([run.model])[run.model]
    fig = go.Figure(
        go.Scatter(
            x=frame["ts"],
            y=depth,
            mode="lines",
            fill="tozeroy",
            name=f"{text(run.label)} drawdown",
            line={"color": colour, "width": 1.5},
            hovertemplate="%{x|%Y-%m-%d %H:%M}: %{y:.2%}<extra></extra>",
        )
    )
    worst = deepest_drawdown(values)
    if len(frame) and worst is not None:
        peak, trough = worst
        stamps = frame["ts"].tolist()
        fig.add_trace(
            go.Scatter(
                x=[stamps[max(peak - 1, 0)], stamps[trough - 1]],
                y=[0.0, float(depth[trough - 1])],
                mode="markers+text",
                name="deepest drawdown",
                text=["peak", f"trough {float(depth[trough - 1]):.2%}"],
                textposition=["top center", "bottom center"],
                marker={"size": 11, "color": ["#FECB52", LOSS_COLOUR], "symbol": "diamond"},
                hovertemplate="%{text}: %{x|%Y-%m-%d %H:%M}<extra></extra>",
            )
        )
    elif len(frame):
        note(fig, "no drawdown: equity never fell below its peak")
    else:
        note(fig, "the run has no bars yet")
    layout(
        fig,
        "Drawdown (equity below its running peak)",
        xaxis_title="date",
        yaxis_title="drawdown",
        yaxis_tickformat=".1%",
    )
    return fig


def position_values(run: ChartRun) -> pd.DataFrame:
    """Value of each held symbol at each bar (quantity x close), indexed by bar time, one
    column per symbol; shorts are negative values."""
    index = run.price_index()
    rows: list[dict[str, float]] = []
    for ts, holdings in zip(run.equity["ts"], run.equity["holdings"], strict=True):
        when = ts.to_pydatetime()
        row: dict[str, float] = {}
        for symbol, qty in (holdings or {}).items():
            price = index.close_at_or_before(symbol, when)
            row[str(symbol)] = float(qty) * (price or 0.0)
        rows.append(row)
    stamps = pd.DatetimeIndex(run.equity["ts"])
    return pd.DataFrame(rows, index=stamps, dtype=float).fillna(0.0)


def check_top(top: int) -> int:
    """``top`` of :func:`allocation`: a whole number of at least 1."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValidationError(f"top must be a whole number of at least 1, got {top!r}")
    return top


def allocation(run: ChartRun, top: int = 10) -> go.Figure:
    """Stacked areas of cash and each position's value (quantity x close) at each bar.

    The ``top`` symbols by mean absolute value get their own area; the rest are summed
    as "other". The stack adds up to the equity marked at each bar.
    """
    check_top(top)
    values, frame = position_values(run), run.equity
    order = values.abs().mean().sort_values(ascending=False, kind="stable").index.tolist()
    keep, rest = order[:top], order[top:]
    currency = run.currency
    fig = go.Figure()
    hover = f"%{{fullData.name}}: %{{y:,.2f}} {currency}<extra></extra>"
    fig.add_trace(
        go.Scatter(
            x=frame["ts"],
            y=frame["cash"].to_numpy(dtype=float),
            name="cash",
            mode="lines",
            stackgroup="allocation",
            line={"color": CASH_COLOUR, "width": 0.5},
            hovertemplate=hover,
        )
    )
    for i, symbol in enumerate(keep):
        fig.add_trace(
            go.Scatter(
                x=frame["ts"],
                y=values[symbol].to_numpy(dtype=float),
                name=text(symbol),
                mode="lines",
                stackgroup="allocation",
                line={"color": PALETTE[i % len(PALETTE)], "width": 0.5},
                hovertemplate=hover,
            )
        )
    if rest:
        fig.add_trace(
            go.Scatter(
                x=frame["ts"],
                y=values[rest].sum(axis=1).to_numpy(dtype=float),
                name=f"other ({len(rest)})",
                mode="lines",
                stackgroup="allocation",
                line={"color": OTHER_COLOUR, "width": 0.5},
                hovertemplate=hover,
            )
        )
    if frame.empty:
        note(fig, "the run has no bars yet")
    layout(
        fig,
        f"Allocation of {text(run.label)} (value at each bar's close)",
        xaxis_title="date",
        yaxis_title=f"value ({currency})",
        yaxis_tickformat=",.0f",
    )
    return fig


def trades_on_price(run: ChartRun, symbol: str) -> go.Figure:
    """The symbol's bars over the run's period with the run's fills at their prices.

    Candlesticks of the bars, and one marker trace per kind of fill (buy, sell, short,
    cover) whose hover shows the order id, quantity, price and fees.
    """
    index = run.price_index()
    if not index.has_symbol(symbol):
        raise NotFoundError(
            f"symbol {symbol!r} is not in the {index.market} {index.interval} price data"
        )
    done = run.filled()
    traded = sorted(set(done["symbol"].astype(str)))
    mine = done[done["symbol"] == symbol]
    if mine.empty:
        listing = ", ".join(traded) if traded else "nothing"
        raise ValidationError(f"run {run.id} never traded {symbol}; it traded {listing}")
    bars = index.bars(symbol)
    ts = np.array(bars.ts, dtype="datetime64[us]")
    inside = (ts >= np.datetime64(run.start, "us")) & (ts <= np.datetime64(run.end, "us"))
    times = pd.DatetimeIndex(ts[inside])
    fig = go.Figure(
        go.Candlestick(
            x=times,
            open=bars.open[inside],
            high=bars.high[inside],
            low=bars.low[inside],
            close=bars.close[inside],
            name=text(symbol),
            increasing={"line": {"color": "#26A69A"}},
            decreasing={"line": {"color": "#EF5350"}},
        )
    )
    currency = run.currency
    for action in FILL_ACTIONS:
        rows = mine[mine["action"] == action]
        if rows.empty:
            continue
        marker, colour = FILL_STYLE[action]
        hover = [
            f"{action} {q:g} {text(symbol)} @ {p:,.2f} {currency}<br>"
            f"order {text(o)} · fees {f:,.2f}<br>{pd.Timestamp(t):%Y-%m-%d %H:%M}"
            for q, p, o, f, t in zip(
                rows["quantity"],
                rows["fill_price"],
                rows["order_id"],
                rows["fees"],
                rows["ts"],
                strict=True,
            )
        ]
        fig.add_trace(
            go.Scatter(
                x=pd.to_datetime(rows["ts"]),
                y=rows["fill_price"].to_numpy(dtype=float),
                mode="markers",
                name=action,
                text=hover,
                hovertemplate="%{text}<extra></extra>",
                marker={
                    "symbol": marker,
                    "color": colour,
                    "size": 12,
                    "line": {"color": "#FFFFFF", "width": 1},
                },
            )
        )
    layout(
        fig,
        f"{text(symbol)}: trades of {text(run.label)}",
        xaxis_title="date",
        yaxis_title=f"price ({currency})",
        yaxis_tickformat=",.2f",
        xaxis_rangeslider_visible=False,
        hovermode="closest",
    )
    return fig


def most_traded_symbol(fills: pd.DataFrame) -> str | None:
    """The symbol with the most fills (ties: larger traded value), or None."""
    if fills.empty:
        return None
    done = fills.assign(value=(fills["quantity"] * fills["fill_price"]).abs())
    stats = done.groupby("symbol").agg(n=("value", "size"), value=("value", "sum"))
    stats = stats.sort_values(["n", "value"], ascending=False, kind="stable")
    return str(stats.index[0])


def _board_labels(board: pd.DataFrame) -> list[str]:
    models = board["model"].astype(str).tolist()
    if len(set(models)) == len(models) or "latest_run" not in board.columns:
        return models
    return [f"{m} (run {r})" for m, r in zip(models, board["latest_run"], strict=True)]


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def leaderboard_bars(board: pd.DataFrame, metric: str = "total_return") -> go.Figure:
    """One bar per model of a leaderboard (``lab.leaderboard()``) for ``metric``.

    For return metrics the benchmark's buy-and-hold return over each model's bars is
    drawn as a marker over its bar. Where repeated runs give a mean with a 95% interval
    (``mean_ci_low``/``mean_ci_high``), it is drawn as error bars: on the bars for
    ``mean_return``, else as a "mean of runs" marker beside the latest run's value. The
    hover carries the board's verdict against the benchmark.
    """
    if board is None or board.empty:
        raise ValidationError("the leaderboard is empty: no completed runs match")
    if metric not in board.columns:
        raise ValidationError(
            f"no column {metric!r} in the leaderboard; choose one of {', '.join(board.columns)}"
        )
    if "model" not in board.columns:
        raise ValidationError("the leaderboard has no 'model' column")
    unit = metric_unit(metric)
    models = board["model"].astype(str).tolist()
    labels = [text(label) for label in _board_labels(board)]
    colours = model_colours(models)
    y = [float(v) if _present(v) else None for v in board[metric]]

    def column(name: str) -> list[Any]:
        return board[name].tolist() if name in board.columns else [None] * len(board)

    verdicts, benchmarks, excess, runs = (
        column("vs_benchmark"),
        column("benchmark"),
        column("excess_return"),
        column("runs"),
    )
    hover = []
    for v, b, e, n in zip(verdicts, benchmarks, excess, runs, strict=True):
        parts = [f"runs: {n}" if _present(n) else ""]
        if _present(e):
            parts.append(f"excess vs {text(b)}: {float(e):+.2%}")
        parts.append(text(v) if _present(v) else "")
        hover.append("<br>".join(p for p in parts if p))
    low, high = column("mean_ci_low"), column("mean_ci_high")
    means = column("mean_return")
    has_ci = [_present(lo) and _present(hi) for lo, hi in zip(low, high, strict=True)]
    error: dict[str, Any] | None = None
    if metric == "mean_return" and any(has_ci):
        error = _error_bars(y, low, high, has_ci)
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=y,
            name=metric,
            marker={"color": [colours[m] for m in models]},
            error_y=error,
            customdata=hover,
            hovertemplate=f"%{{x}}<br>{metric}: %{{y:{hover_format(unit)}}}<br>"
            "%{customdata}<extra></extra>",
        )
    )
    if metric in RETURN_METRICS and metric != "mean_return" and any(has_ci):
        mean_y = [float(m) if ok else None for m, ok in zip(means, has_ci, strict=True)]
        fig.add_trace(
            go.Scatter(
                x=labels,
                y=mean_y,
                mode="markers",
                name="mean of runs (95% CI)",
                marker={"color": "#FFFFFF", "size": 9, "symbol": "circle-open"},
                error_y=_error_bars(mean_y, low, high, has_ci),
                hovertemplate="%{x}<br>mean of runs: %{y:.2%}<extra></extra>",
            )
        )
    bench = column("benchmark_return")
    if metric in RETURN_METRICS and any(_present(b) for b in bench):
        fig.add_trace(
            go.Scatter(
                x=labels,
                y=[float(b) if _present(b) else None for b in bench],
                mode="markers",
                name="benchmark buy-and-hold",
                marker={
                    "symbol": "line-ew-open",
                    "size": 60,
                    "color": BENCHMARK_COLOUR,
                    "line": {"width": 3, "color": BENCHMARK_COLOUR},
                },
                customdata=[text(b) for b in benchmarks],
                hovertemplate="%{x}<br>%{customdata} buy-and-hold: %{y:.2%}<extra></extra>",
            )
        )
    layout(
        fig,
        f"Leaderboard: {metric}",
        xaxis_title="model",
        yaxis_title=metric.replace("_", " "),
        yaxis_tickformat=axis_format(unit),
        hovermode="closest",
    )
    return fig


def _error_bars(
    y: list[float | None], low: list[Any], high: list[Any], has_ci: list[bool]
) -> dict[str, Any]:
    """Asymmetric error bars from interval ends around ``y`` (zero where there is none)."""
    plus, minus = [], []
    for value, lo, hi, ok in zip(y, low, high, has_ci, strict=True):
        if ok and value is not None:
            plus.append(max(float(hi) - value, 0.0))
            minus.append(max(value - float(lo), 0.0))
        else:
            plus.append(0.0)
            minus.append(0.0)
    return {
        "type": "data",
        "symmetric": False,
        "array": plus,
        "arrayminus": minus,
        "color": "#FFFFFF",
        "thickness": 1.5,
        "width": 6,
    }


ATTRIBUTION_NEEDS = ("rule", "blocked", "resized", "forced", "pnl_effect")


def rule_attribution(table: pd.DataFrame) -> go.Figure:
    """Bars of each rule's P&L effect (``run.attribution()``).

    The effect is the run's final value minus the final value of the replay without the
    rule: green where the rule helped, red where it cost. Hover shows the orders the rule
    blocked, resized and forced.
    """
    if table is None or table.empty:
        raise ValidationError("the attribution table is empty: the run has no rules")
    missing = [c for c in ATTRIBUTION_NEEDS if c not in table.columns]
    if missing:
        raise ValidationError(f"not an attribution table: missing {', '.join(missing)}")
    effects = table["pnl_effect"].astype(float).to_numpy()
    origin = table["origin"] if "origin" in table.columns else pd.Series([""] * len(table))
    hover = [
        f"origin: {text(o)}<br>blocked {int(b)} · resized {int(r)} · forced {int(f)}"
        for o, b, r, f in zip(
            origin, table["blocked"], table["resized"], table["forced"], strict=True
        )
    ]
    fig = go.Figure(
        go.Bar(
            x=[text(rule) for rule in table["rule"]],
            y=effects,
            name="P&L effect",
            marker={"color": [GAIN_COLOUR if e >= 0 else LOSS_COLOUR for e in effects]},
            customdata=hover,
            hovertemplate="%{x}<br>P&amp;L effect: %{y:+,.2f}<br>%{customdata}<extra></extra>",
        )
    )
    layout(
        fig,
        "Rule attribution: final value with the rule minus without it",
        xaxis_title="rule",
        yaxis_title="P&L effect",
        yaxis_tickformat=",.0f",
        hovermode="closest",
        showlegend=False,
    )
    return fig
