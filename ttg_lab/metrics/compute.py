"""Performance metrics of one run, from its marked-to-market equity at every bar and its
ledger. Pure functions over arrays, vectorised, so a million bars take well under a
second. Every key and formula is listed in :mod:`ttg_lab.metrics.reference`.

Undefined values (a ratio over zero volatility, a win rate with no round trips) are
``None``, never NaN or infinity, so the results go to JSON and tables as they are.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import pandas as pd

from ttg_lab.engine.equity import drawdowns
from ttg_lab.market.markets import get_market
from ttg_lab.metrics.bootstrap import excess_interval
from ttg_lab.metrics.reference import METRIC_KEYS


def periods_per_year(market: str, interval: str) -> float:
    """Bars per year of a market's interval (the annualisation factor P)."""
    spec = get_market(market)
    if interval == "1d":
        return float(spec.periods_per_year_daily)
    return float(spec.periods_per_year_daily * spec.bars_per_day_hourly)


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def bar_returns(equity: np.ndarray) -> np.ndarray:
    """r_t = E_t / E_{t-1} - 1; a bar after equity reached zero returns 0."""
    previous = equity[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.where(previous > 0, equity[1:] / previous - 1.0, 0.0)
    return returns


def deepest_drawdown(values: np.ndarray) -> tuple[int, int] | None:
    """Positions (peak, trough) of the deepest drawdown in ``values`` (initial cash at
    position 0, bar i at position i), or None when equity never fell below its peak.

    The peak is the last position at the running maximum before the trough (the
    ``max_drawdown_peak`` of the metrics; a peak at position 0 dates to the first bar).
    """
    depth = drawdowns(values)
    if len(depth) < 2:
        return None
    trough = int(np.argmin(depth))
    if depth[trough] >= 0:
        return None
    top = values[: trough + 1].max()
    peak = int(np.flatnonzero(values[: trough + 1] == top)[-1])
    return peak, trough


def drawdown_details(equity: np.ndarray, times: pd.DatetimeIndex) -> dict[str, Any]:
    """Depth, peak, trough, recovery and duration of the deepest drawdown.

    ``equity`` includes the initial cash at position 0; ``times`` are the bars 1..n, so
    position i of ``equity`` is ``times[i - 1]`` (the initial cash dates to the first bar).
    """
    deepest = deepest_drawdown(equity)
    if deepest is None:
        return {
            "max_drawdown": 0.0,
            "max_drawdown_peak": None,
            "max_drawdown_trough": None,
            "max_drawdown_recovery": None,
            "max_drawdown_duration": 0,
        }
    peak, trough = deepest
    after = np.flatnonzero(equity[trough:] >= equity[peak])
    recovery = trough + int(after[0]) if len(after) else None
    end = recovery if recovery is not None else len(equity) - 1
    return {
        "max_drawdown": float(equity[trough] / equity[peak] - 1.0),  # the depth at the trough
        "max_drawdown_peak": times[max(peak - 1, 0)],
        "max_drawdown_trough": times[trough - 1],
        "max_drawdown_recovery": times[recovery - 1] if recovery is not None else None,
        "max_drawdown_duration": end - peak,
    }


def round_trips(ledger: pd.DataFrame, bars: pd.DatetimeIndex | None = None) -> list[dict[str, Any]]:
    """Closed round trips by FIFO matching of fills per symbol (long and short).

    Each trip: symbol, side, quantity, entry/exit time and price, P&L including the
    fees of both legs pro rata, bars held, and the order ids of both legs.
    """
    fills = ledger[ledger["status"] == "filled"]
    times = pd.DatetimeIndex(fills["ts"])
    positions = (
        bars.get_indexer(times) if bars is not None else np.zeros(len(fills), int)
    ).tolist()
    lots: dict[str, deque[list[Any]]] = {}
    trips: list[dict[str, Any]] = []
    columns = zip(
        fills["action"].tolist(),
        fills["symbol"].tolist(),
        fills["quantity"].tolist(),
        fills["fill_price"].tolist(),
        fills["fees"].tolist(),
        list(times),
        fills["order_id"].tolist(),
        positions,
        strict=True,
    )
    for action, symbol, qty, price, fees, ts, order_id, bar in columns:
        qty, price = float(qty), float(price)
        fee_per_unit = float(fees) / qty if qty else 0.0
        book = lots.setdefault(symbol, deque())
        if action in ("buy", "short"):
            book.append([action, qty, price, fee_per_unit, ts, order_id, bar])
            continue
        side = "buy" if action == "sell" else "short"
        remaining = qty
        while remaining > 1e-12 and book and book[0][0] == side:
            lot = book[0]
            matched = min(remaining, lot[1])
            direction = 1.0 if side == "buy" else -1.0
            pnl = direction * (price - lot[2]) * matched - (lot[3] + fee_per_unit) * matched
            trips.append(
                {
                    "symbol": symbol,
                    "side": "long" if side == "buy" else "short",
                    "quantity": matched,
                    "entry_time": lot[4],
                    "exit_time": ts,
                    "entry_price": lot[2],
                    "exit_price": price,
                    "pnl": pnl,
                    "return": direction * (price / lot[2] - 1.0),
                    "bars": int(bar - lot[6]),
                    "entry_order": lot[5],
                    "exit_order": order_id,
                }
            )
            lot[1] -= matched
            remaining -= matched
            if lot[1] <= 1e-12:
                book.popleft()
    return trips


def benchmark_values(
    times: pd.DatetimeIndex, closes: pd.Series | None, entry: float | None
) -> np.ndarray | None:
    """Buy-and-hold of the benchmark over a run's bars: its value at the entry (``entry``,
    the first bar's open, or else that bar's close) and at each bar's close (missing bars
    filled from their neighbours); None when the closes cannot price every bar."""
    if closes is None or not len(times):
        return None
    bench = closes.reindex(times).ffill().bfill().to_numpy(dtype=float)
    if not (len(bench) and np.all(np.isfinite(bench)) and np.all(bench > 0)):
        return None
    start = entry if entry and entry > 0 else bench[0]
    return np.concatenate([[start], bench])


def compute_metrics(
    equity: pd.Series,
    initial_cash: float,
    ledger: pd.DataFrame,
    periods: float,
    benchmark: pd.Series | None = None,
    benchmark_symbol: str | None = None,
    holdings_value: pd.Series | None = None,
    llm: dict[str, float] | None = None,
    benchmark_entry: float | None = None,
) -> dict[str, Any]:
    """All metrics of one run.

    ``equity`` is indexed by bar time (marked at each bar's close); ``benchmark`` holds
    the benchmark's closes at the same bars (missing bars are forward-filled), bought at
    ``benchmark_entry`` (the first bar's open, as the run's own fills) or else its close;
    ``holdings_value`` the gross position value at each bar (for exposure).
    """
    times = pd.DatetimeIndex(equity.index)
    values = np.concatenate([[initial_cash], equity.to_numpy(dtype=float)])
    returns = bar_returns(values)
    n = len(returns)
    out: dict[str, Any] = dict.fromkeys(METRIC_KEYS)
    out.update(
        start=times[0] if n else None,
        end=times[-1] if n else None,
        bars=n,
        periods_per_year=periods,
        final_value=float(values[-1]),
    )
    total = values[-1] / initial_cash - 1.0
    out["total_return"] = float(total)
    if n:
        out["annual_return"] = _finite((1.0 + total) ** (periods / n) - 1.0) if total > -1 else -1.0
    if n >= 2:
        std = float(np.std(returns, ddof=1))
        mean = float(np.mean(returns))
        out["volatility"] = std * math.sqrt(periods)
        out["sharpe"] = _finite(mean / std * math.sqrt(periods)) if std > 1e-15 else None
        downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
        out["sortino"] = (
            _finite(mean * periods / (downside * math.sqrt(periods))) if downside > 1e-15 else None
        )
    out.update(drawdown_details(values, times))
    if out["max_drawdown"] < 0 and out["annual_return"] is not None:
        out["calmar"] = _finite(out["annual_return"] / abs(out["max_drawdown"]))

    fills = ledger[ledger["status"] == "filled"] if len(ledger) else ledger
    out["trades"] = len(fills)
    out["fees"] = float(fills["fees"].sum()) if len(fills) else 0.0
    trips = round_trips(ledger, times) if len(fills) else []
    out["round_trips"] = len(trips)
    if trips:
        pnl = np.array([t["pnl"] for t in trips])
        out["win_rate"] = float(np.mean(pnl > 0))
        losses = -pnl[pnl < 0].sum()
        out["profit_factor"] = float(pnl[pnl > 0].sum() / losses) if losses > 0 else None
        out["avg_holding_bars"] = float(np.mean([t["bars"] for t in trips]))
    mean_equity = float(np.mean(values[1:])) if n else initial_cash
    traded = float((fills["quantity"] * fills["fill_price"]).abs().sum()) if len(fills) else 0.0
    out["turnover"] = traded / mean_equity if mean_equity > 0 else None
    if holdings_value is not None and n:
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(values[1:] > 0, holdings_value.to_numpy(dtype=float) / values[1:], 0.0)
        out["exposure"] = float(np.mean(share))

    b_values = benchmark_values(times, benchmark, benchmark_entry) if n else None
    if b_values is not None and benchmark_symbol:
        out["benchmark"] = benchmark_symbol
        b_returns = bar_returns(b_values)
        out["benchmark_return"] = float(b_values[-1] / b_values[0] - 1.0)
        out["excess_return"] = out["total_return"] - out["benchmark_return"]
        if n >= 2:
            var_b = float(np.var(b_returns, ddof=1))
            if var_b > 1e-30:
                beta = float(np.cov(returns, b_returns, ddof=1)[0, 1] / var_b)
                out["beta"] = beta
                out["alpha"] = _finite(
                    (1.0 + float(np.mean(returns - beta * b_returns))) ** periods - 1.0
                )
            low, high = excess_interval(returns - b_returns, periods)
            out["excess_ci_low"], out["excess_ci_high"] = low, high
            if low is not None and high is not None:
                out["beats_benchmark"] = True if low > 0 else False if high < 0 else None

    llm = llm or {}
    for key in ("llm_calls", "prompt_tokens", "completion_tokens", "llm_cost"):
        out[key] = llm.get(key, 0)
    tokens = out["prompt_tokens"] + out["completion_tokens"]
    out["tokens_per_trade"] = tokens / out["trades"] if out["trades"] and tokens else None
    profit = float(values[-1] - initial_cash)
    out["return_per_llm_dollar"] = profit / out["llm_cost"] if out["llm_cost"] else None
    return out
