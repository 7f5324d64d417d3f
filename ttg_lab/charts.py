"""Plotly charts of runs, leaderboards and rule attribution, for notebooks and reports.

Every function returns a ``plotly.graph_objects.Figure`` in the dark template with
readable axis titles and percent or money formats. A model keeps its colour in every
chart of the same set of models (:func:`model_colours`), so the equity curves and the
leaderboard bars of one comparison match. Text that comes from the store (model names,
order ids) is HTML-escaped before it reaches a figure: plotly renders a subset of HTML in
labels and hover text, and escaped entities display as the literal characters.
"""

from __future__ import annotations

import html
import zlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import plotly.graph_objects as go

from ttg_lab.engine.equity import drawdowns
from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.market.bars import MODES
from ttg_lab.market.cache import data_fingerprint, price_index
from ttg_lab.market.markets import get_market
from ttg_lab.metrics.compute import deepest_drawdown
from ttg_lab.metrics.reference import METRICS
from ttg_lab.metrics.stored import benchmark_closes

if TYPE_CHECKING:
    from ttg_lab.lab import Lab
    from ttg_lab.market.asof import PriceIndex

TEMPLATE = "plotly_dark"
"""The plotly template of every chart (reports use a matching dark page)."""

PALETTE: tuple[str, ...] = (
    "#636EFA",
    "#EF553B",
    "#00CC96",
    "#AB63FA",
    "#FFA15A",
    "#19D3F3",
    "#FF6692",
    "#B6E880",
    "#FF97FF",
    "#FECB52",
)
"""Model colours (plotly's qualitative palette, readable on a dark background)."""

BENCHMARK_COLOUR = "#BBBBBB"
CASH_COLOUR = "#7F8C8D"
OTHER_COLOUR = "#555555"
GAIN_COLOUR = "#00CC96"
LOSS_COLOUR = "#EF553B"

FILL_STYLE: dict[str, tuple[str, str]] = {
    "buy": ("triangle-up", "#00CC96"),
    "sell": ("triangle-down", "#EF553B"),
    "short": ("triangle-down", "#FFA15A"),
    "cover": ("triangle-up", "#19D3F3"),
}
"""Marker symbol and colour of each kind of fill on a price chart."""

FILL_ACTIONS: tuple[str, ...] = tuple(FILL_STYLE)

_UNITS: dict[str, str] = {m.key: m.unit for m in METRICS} | {
    "mean_return": "fraction",
    "best_return": "fraction",
    "mean_ci_low": "fraction",
    "mean_ci_high": "fraction",
    "runs": "count",
}
_RETURN_METRICS = frozenset({"total_return", "mean_return", "best_return"})
"""Metrics comparable with the benchmark's buy-and-hold return over the same bars."""


def text(value: Any) -> str:
    """Store text made safe for plotly labels, hover text and HTML pages."""
    return html.escape("" if value is None else str(value))


def model_colours(models: Iterable[str]) -> dict[str, str]:
    """A colour per model, the same for the same set of models in any order.

    Each model starts from a colour picked by a hash of its name, so a model tends to
    keep its colour across sets too; clashes move to the next free colour.
    """
    names = sorted(set(models))
    taken: set[int] = set()
    colours: dict[str, str] = {}
    for name in names:
        slot = zlib.crc32(name.encode()) % len(PALETTE)
        if len(taken) < len(PALETTE):
            while slot in taken:
                slot = (slot + 1) % len(PALETTE)
        taken.add(slot)
        colours[name] = PALETTE[slot]
    return colours


def metric_unit(key: str) -> str:
    """The unit of a metric or board column (``fraction``, ``ratio``, ``currency``, ...)."""
    return _UNITS.get(key, "ratio")


def axis_format(unit: str) -> str:
    """A d3 number format for values of ``unit``."""
    return {"fraction": ".1%", "currency": ",.0f", "USD": ",.2f", "count": ",d"}.get(unit, ".2f")


def hover_format(unit: str) -> str:
    """A d3 number format for hover values of ``unit`` (more precise than the axis)."""
    return {"fraction": ".2%", "currency": ",.2f", "USD": ",.4f", "count": ",d"}.get(unit, ".3f")


def _layout(fig: go.Figure, title: str, **kwargs: Any) -> go.Figure:
    settings: dict[str, Any] = {
        "template": TEMPLATE,
        "title": {"text": title, "x": 0.01},
        "hovermode": "x unified",
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        "margin": {"l": 70, "r": 30, "t": 90, "b": 50},
    }
    fig.update_layout(**(settings | kwargs))
    return fig


def _note(fig: go.Figure, message: str, y: float = 0.5) -> None:
    """A visible explanation inside the plot (why something is missing)."""
    fig.add_annotation(
        text=text(message),
        xref="paper",
        yref="paper",
        x=0.5,
        y=y,
        showarrow=False,
        font={"size": 14, "color": "#DDDDDD"},
    )


def _run(lab: Lab, run_id: int) -> dict[str, Any]:
    """A run's info row (raises NotFoundError naming the id)."""
    return lab.run(run_id).info()


def _label(info: dict[str, Any]) -> str:
    return f"{info['model']} #{info['run_number']}"


def _interval(info: dict[str, Any]) -> str:
    return str(info["snapshot"].get("interval") or MODES[info["mode"]])


def _index(lab: Lab, info: dict[str, Any]) -> PriceIndex:
    market, interval = info["snapshot"]["model"]["market"], _interval(info)
    return price_index(lab.store, market, interval, data_fingerprint(lab.store, market, interval))


def _currency(info: dict[str, Any]) -> str:
    return get_market(info["snapshot"]["model"]["market"]).currency


def _equity(lab: Lab, run_id: int) -> pd.DataFrame:
    frame = lab.run(run_id).equity()
    frame["ts"] = pd.to_datetime(frame["ts"])
    return frame


def equity_curves(
    lab: Lab, run_ids: Sequence[int], benchmark: bool = True, normalise: bool = True
) -> go.Figure:
    """Equity of several runs, one point per bar, each against buy-and-hold of its own
    market's benchmark over its own bars.

    With ``normalise`` each curve is equity / initial cash (1.0 = the starting money), so
    runs with different cash, markets and periods compare; otherwise money, which needs
    runs in one currency. A run's benchmark is bought at the open of that run's first bar
    and follows that run's bars (so its last point is 1 + the run's ``benchmark_return``);
    runs of one market and interval over the same bars share one benchmark line. Where
    the data lacks a benchmark, the chart says so instead.
    """
    ids = list(dict.fromkeys(run_ids))
    if not ids:
        raise ValidationError("equity_curves needs at least one run id")
    infos = [_run(lab, run_id) for run_id in ids]
    currencies = sorted({_currency(info) for info in infos})
    if not normalise and len(currencies) > 1:
        raise ValidationError(
            f"runs {', '.join(str(i) for i in ids)} are in different currencies "
            f"({', '.join(currencies)}): draw them normalised (growth of 1) instead of in money"
        )
    colours = model_colours(info["model"] for info in infos)
    seen: dict[str, int] = {}
    fig = go.Figure()
    frames: dict[int, pd.DataFrame] = {}
    for info in infos:
        frame = frames[info["id"]] = _equity(lab, info["id"])
        cash = float(info["snapshot"]["model"]["initial_cash"])
        values = frame["equity"].to_numpy(dtype=float)
        dash = ("solid", "dash", "dot", "dashdot", "longdash")[seen.get(info["model"], 0) % 5]
        seen[info["model"]] = seen.get(info["model"], 0) + 1
        label = text(_label(info))
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
                line={"color": colours[info["model"]], "dash": dash, "width": 2},
                hovertemplate=hover,
                meta={"run_id": info["id"]},
            )
        )
    if benchmark:
        _add_benchmarks(lab, fig, infos, frames, normalise, colours)
    _layout(
        fig,
        "Equity vs buy-and-hold of the benchmark" if benchmark else "Equity",
        xaxis_title="date",
        yaxis_title="growth of 1 (start = 1.0)" if normalise else f"equity ({currencies[0]})",
        yaxis_tickformat=".2f" if normalise else ",.0f",
    )
    return fig


def _add_benchmarks(
    lab: Lab,
    fig: go.Figure,
    infos: list[dict[str, Any]],
    frames: dict[int, pd.DataFrame],
    normalise: bool,
    colours: dict[str, str],
) -> None:
    """One benchmark line per market, interval and set of bars among the runs (and per
    starting cash when drawn in money), each labelled with the runs it belongs to."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    notes: list[str] = []
    for info in infos:
        stamps = tuple(frames[info["id"]]["ts"])
        if not stamps:
            notes.append(f"{_label(info)} has no bars yet")
            continue
        cash = None if normalise else float(info["snapshot"]["model"]["initial_cash"])
        key = (info["snapshot"]["model"]["market"], _interval(info), stamps, cash)
        groups.setdefault(key, []).append(info)
    for served in groups.values():
        first = served[0]
        times = pd.DatetimeIndex(frames[first["id"]]["ts"])
        growth = _benchmark_growth(lab, first, times)
        market = first["snapshot"]["model"]["market"]
        symbol = get_market(market).benchmark
        if isinstance(growth, str):
            notes.append(growth)
            continue
        cash = float(first["snapshot"]["model"]["initial_cash"])
        y = growth if normalise else growth * cash
        name = f"{symbol} buy-and-hold"
        if len(groups) > 1:
            name += " for " + ", ".join(_label(info) for info in served)
        number = "%{y:.4f}" if normalise else "%{y:,.2f}"
        fig.add_trace(
            go.Scatter(
                x=times,
                y=y,
                customdata=growth - 1.0,
                mode="lines",
                name=text(name),
                line={
                    "color": BENCHMARK_COLOUR if len(groups) == 1 else colours[first["model"]],
                    "dash": "dot",
                    "width": 2,
                },
                hovertemplate=f"{text(name)}: {number} (%{{customdata:+.2%}})<extra></extra>",
                meta={"benchmark": symbol, "run_ids": [info["id"] for info in served]},
            )
        )
    for i, message in enumerate(dict.fromkeys(notes)):
        _note(fig, message, y=0.5 - 0.08 * i)


def _benchmark_growth(
    lab: Lab, info: dict[str, Any], times: pd.DatetimeIndex
) -> npt.NDArray[np.float64] | str:
    """Growth of 1 in the run's market benchmark at the run's bars, bought at the first
    bar's open like the run's own orders (as ``benchmark_return``); or why there is none."""
    market = info["snapshot"]["model"]["market"]
    symbol = get_market(market).benchmark
    closes = benchmark_closes(lab.store, market, _interval(info))
    if closes is None:
        return f"benchmark {symbol} is not in the {market} {_interval(info)} data"
    bench = closes.reindex(times).ffill().bfill().to_numpy(dtype=float)
    if not (np.all(np.isfinite(bench)) and np.all(bench > 0)):
        return f"benchmark {symbol} has no prices over the bars of {_label(info)}"
    entry = _index(lab, info).bar_value(symbol, times[0].to_pydatetime(), "open")
    growth: npt.NDArray[np.float64] = bench / (entry if entry and entry > 0 else bench[0])
    return growth


def drawdown(lab: Lab, run_id: int) -> go.Figure:
    """The underwater curve: equity below its running peak at each bar, in percent.

    The running peak starts at the initial cash, as ``max_drawdown`` in the metrics does,
    and the deepest drawdown's peak and trough are marked.
    """
    info = _run(lab, run_id)
    frame = _equity(lab, run_id)
    cash = float(info["snapshot"]["model"]["initial_cash"])
    values = np.concatenate([[cash], frame["equity"].to_numpy(dtype=float)])
    depth = drawdowns(values)[1:]
    colour = model_colours([info["model"]])[info["model"]]
    fig = go.Figure(
        go.Scatter(
            x=frame["ts"],
            y=depth,
            mode="lines",
            fill="tozeroy",
            name=f"{text(_label(info))} drawdown",
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
        _note(fig, "no drawdown: equity never fell below its peak")
    else:
        _note(fig, "the run has no bars yet")
    _layout(
        fig,
        "Drawdown (equity below its running peak)",
        xaxis_title="date",
        yaxis_title="drawdown",
        yaxis_tickformat=".1%",
    )
    return fig


def position_values(lab: Lab, run_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Value of each held symbol at each bar (quantity x close) and the bars' cash/equity.

    Shorts are negative values. Returns (values indexed by bar time, one column per
    symbol; the equity frame).
    """
    info = _run(lab, run_id)
    frame = _equity(lab, run_id)
    index = _index(lab, info)
    rows: list[dict[str, float]] = []
    for ts, holdings in zip(frame["ts"], frame["holdings"], strict=True):
        when = ts.to_pydatetime()
        row: dict[str, float] = {}
        for symbol, qty in (holdings or {}).items():
            price = index.close_at_or_before(symbol, when)
            row[str(symbol)] = float(qty) * (price or 0.0)
        rows.append(row)
    values = pd.DataFrame(rows, index=pd.DatetimeIndex(frame["ts"]), dtype=float).fillna(0.0)
    return values, frame


def allocation(lab: Lab, run_id: int, top: int = 10) -> go.Figure:
    """Stacked areas of cash and each position's value (quantity x close) at each bar.

    The ``top`` symbols by mean absolute value get their own area; the rest are summed
    as "other". The stack adds up to the equity marked at each bar.
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValidationError(f"top must be a whole number of at least 1, got {top!r}")
    info = _run(lab, run_id)
    values, frame = position_values(lab, run_id)
    order = values.abs().mean().sort_values(ascending=False, kind="stable").index.tolist()
    keep, rest = order[:top], order[top:]
    currency = _currency(info)
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
        _note(fig, "the run has no bars yet")
    _layout(
        fig,
        f"Allocation of {text(_label(info))} (value at each bar's close)",
        xaxis_title="date",
        yaxis_title=f"value ({currency})",
        yaxis_tickformat=",.0f",
    )
    return fig


def fills(lab: Lab, run_id: int) -> pd.DataFrame:
    """The run's filled orders (ledger rows with status ``filled``)."""
    ledger = lab.run(run_id).ledger()
    return ledger[ledger["status"] == "filled"].reset_index(drop=True)


def trades_on_price(lab: Lab, run_id: int, symbol: str) -> go.Figure:
    """The symbol's bars over the run's period with the run's fills at their prices.

    Candlesticks of the bars, and one marker trace per kind of fill (buy, sell, short,
    cover) whose hover shows the order id, quantity, price and fees.
    """
    info = _run(lab, run_id)
    index = _index(lab, info)
    if not index.has_symbol(symbol):
        raise NotFoundError(
            f"symbol {symbol!r} is not in the {index.market} {index.interval} price data"
        )
    done = fills(lab, run_id)
    traded = sorted(set(done["symbol"].astype(str)))
    mine = done[done["symbol"] == symbol]
    if mine.empty:
        listing = ", ".join(traded) if traded else "nothing"
        raise ValidationError(f"run {run_id} never traded {symbol}; it traded {listing}")
    bars = index.bars(symbol)
    start, end = info["start"], info["end"]
    ts = np.array(bars.ts, dtype="datetime64[us]")
    inside = (ts >= np.datetime64(start, "us")) & (ts <= np.datetime64(end, "us"))
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
    currency = _currency(info)
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
    _layout(
        fig,
        f"{text(symbol)}: trades of {text(_label(info))}",
        xaxis_title="date",
        yaxis_title=f"price ({currency})",
        yaxis_tickformat=",.2f",
        xaxis_rangeslider_visible=False,
        hovermode="closest",
    )
    return fig


def most_traded_symbol(lab: Lab, run_id: int) -> str | None:
    """The symbol with the most fills in a run (ties: larger traded value), or None."""
    done = fills(lab, run_id)
    if done.empty:
        return None
    done = done.assign(value=(done["quantity"] * done["fill_price"]).abs())
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
    if metric in _RETURN_METRICS and metric != "mean_return" and any(has_ci):
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
    if metric in _RETURN_METRICS and any(_present(b) for b in bench):
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
    _layout(
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
    """Bars of each rule's P&L effect (``lab.attribution(run_id)``).

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
    _layout(
        fig,
        "Rule attribution: final value with the rule minus without it",
        xaxis_title="rule",
        yaxis_title="P&L effect",
        yaxis_tickformat=",.0f",
        hovermode="closest",
        showlegend=False,
    )
    return fig


__all__ = [
    "TEMPLATE",
    "allocation",
    "drawdown",
    "equity_curves",
    "leaderboard_bars",
    "model_colours",
    "most_traded_symbol",
    "rule_attribution",
    "trades_on_price",
]
