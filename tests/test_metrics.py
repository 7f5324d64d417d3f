"""Metrics: the documented keys, independent oracles on real data, and edge cases."""

from __future__ import annotations

import re
from pathlib import Path

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
import quantstats as qs

from ttg_lab.config import PROJECT_ROOT
from ttg_lab.lab import Lab
from ttg_lab.metrics import METRIC_KEYS, compute_metrics, periods_per_year, round_trips
from ttg_lab.metrics.bootstrap import excess_interval, iid_mean_interval
from ttg_lab.metrics.compute import bar_returns
from ttg_lab.metrics.reference import markdown_table
from ttg_lab.metrics.stored import benchmark_bars

EMPTY_LEDGER = pd.DataFrame(
    columns=[
        "step_index",
        "ts",
        "action",
        "symbol",
        "quantity",
        "fill_price",
        "fees",
        "order_id",
        "status",
    ]
)


def test_readme_documents_exactly_the_computed_keys() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert markdown_table() in readme, "regenerate with: python -m ttg_lab.metrics.reference"
    section = readme.split("## Metrics reference", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)
    computed = compute_metrics(
        pd.Series([1.0], index=pd.DatetimeIndex(["2025-01-02"])), 1.0, EMPTY_LEDGER, 252
    )
    assert tuple(documented) == METRIC_KEYS == tuple(computed)


def test_annualisation_follows_market_and_interval() -> None:
    assert periods_per_year("us", "1d") == 252
    assert periods_per_year("us", "60min") == 252 * 6.5
    assert periods_per_year("cn", "60min") == 252 * 4
    assert periods_per_year("crypto", "1d") == 365


@pytest.fixture()
def momentum_run(lab: Lab) -> dict[str, object]:
    model = lab.models.create(
        "oracle",
        ai_model_id="baseline/momentum",
        initial_cash=100_000.0,
        parameters={"lookback": 10, "top_k": 5},
    )
    run = lab.start_run(model, path="direct", background=False)
    equity = run.equity().set_index("ts")["equity"]
    returns = pd.Series(
        bar_returns(np.concatenate([[100_000.0], equity.to_numpy()])), index=equity.index
    )
    bench = benchmark_bars(lab.store, "us", "1d")
    assert bench is not None
    b = bench.reindex(equity.index)
    entry = b["open"].iloc[0]  # bought at the first open, like the run
    b_returns = pd.Series(
        bar_returns(np.concatenate([[entry], b["close"].to_numpy()])), index=equity.index
    )
    return {"metrics": lab.run(run.id).metrics(), "returns": returns, "bench": b_returns}


def test_metrics_equal_empyrical_on_real_data(momentum_run: dict[str, object]) -> None:
    m: dict[str, float] = momentum_run["metrics"]  # type: ignore[assignment]
    r: pd.Series = momentum_run["returns"]  # type: ignore[assignment]
    b: pd.Series = momentum_run["bench"]  # type: ignore[assignment]
    assert abs(m["annual_return"] - ep.annual_return(r, annualization=252)) < 1e-9
    assert abs(m["volatility"] - ep.annual_volatility(r, annualization=252)) < 1e-9
    assert abs(m["sharpe"] - ep.sharpe_ratio(r, annualization=252)) < 1e-9
    assert abs(m["sortino"] - ep.sortino_ratio(r, annualization=252)) < 1e-9
    assert abs(m["max_drawdown"] - ep.max_drawdown(r)) < 1e-9
    assert abs(m["calmar"] - ep.calmar_ratio(r, annualization=252)) < 1e-9
    alpha, beta = ep.alpha_beta(r, b, annualization=252)
    assert abs(m["beta"] - beta) < 1e-9 and abs(m["alpha"] - alpha) < 1e-9
    assert abs(m["total_return"] - ep.cum_returns_final(r)) < 1e-9


def test_metrics_equal_quantstats_where_conventions_match(momentum_run: dict[str, object]) -> None:
    m: dict[str, float] = momentum_run["metrics"]  # type: ignore[assignment]
    r: pd.Series = momentum_run["returns"]  # type: ignore[assignment]
    assert abs(m["sharpe"] - qs.stats.sharpe(r, periods=252)) < 1e-9
    assert abs(m["volatility"] - qs.stats.volatility(r, periods=252)) < 1e-9
    assert abs(m["max_drawdown"] - qs.stats.max_drawdown(r)) < 1e-9
    # quantstats Sortino divides by sqrt(sum(min(r,0)^2) / n) too: same number
    assert abs(m["sortino"] - qs.stats.sortino(r, periods=252)) < 1e-9


def test_where_conventions_differ_the_difference_is_explained(
    momentum_run: dict[str, object],
) -> None:
    """Two quantstats numbers mean something else than ours:

    - alpha: quantstats annualises the mean residual simply, mean(r - beta b) x P; we (and
      empyrical) compound it, (1 + mean(r - beta b))^P - 1.
    - win rate: quantstats counts winning *bars*; ours counts winning round trips.
    """
    m: dict[str, float] = momentum_run["metrics"]  # type: ignore[assignment]
    r: pd.Series = momentum_run["returns"]  # type: ignore[assignment]
    b: pd.Series = momentum_run["bench"]  # type: ignore[assignment]
    greeks = qs.stats.greeks(r, b, periods=252)
    assert abs(greeks["beta"] - m["beta"]) < 1e-9
    simple = float(np.mean(r - m["beta"] * b)) * 252
    assert abs(greeks["alpha"] - simple) < 1e-9
    assert abs(m["alpha"] - ((1 + simple / 252) ** 252 - 1)) < 1e-9
    assert abs(greeks["alpha"] - m["alpha"]) > 1e-6
    assert abs(qs.stats.win_rate(r) - float((r[r != 0] > 0).mean())) < 1e-9
    assert m["win_rate"] != qs.stats.win_rate(r)


def test_a_first_bar_loss_is_a_drawdown_from_the_initial_cash() -> None:
    index = pd.DatetimeIndex(pd.bdate_range("2025-01-02", periods=3))
    m = compute_metrics(pd.Series([90.0, 94.5, 99.0], index=index), 100.0, EMPTY_LEDGER, 252)
    r = pd.Series(bar_returns(np.array([100.0, 90.0, 94.5, 99.0])), index=index)
    assert m["max_drawdown"] == pytest.approx(-0.10) == ep.max_drawdown(r)
    assert m["max_drawdown_peak"] == index[0] and m["max_drawdown_recovery"] is None
    assert m["max_drawdown_duration"] == 3


def series(values: list[float]) -> pd.Series:
    return pd.Series(
        values, index=pd.DatetimeIndex(pd.bdate_range("2025-03-03", periods=len(values)))
    )


def test_no_trades_and_flat_equity() -> None:
    m = compute_metrics(series([100.0] * 20), 100.0, EMPTY_LEDGER, 252)
    assert m["total_return"] == 0 and m["annual_return"] == 0 and m["volatility"] == 0
    assert m["sharpe"] is None and m["sortino"] is None and m["calmar"] is None
    assert m["max_drawdown"] == 0 and m["max_drawdown_duration"] == 0
    assert m["trades"] == 0 and m["round_trips"] == 0 and m["win_rate"] is None
    assert m["turnover"] == 0 and m["tokens_per_trade"] is None


def test_one_bar() -> None:
    m = compute_metrics(series([101.0]), 100.0, EMPTY_LEDGER, 252)
    assert m["bars"] == 1 and m["total_return"] == pytest.approx(0.01)
    assert m["volatility"] is None and m["sharpe"] is None
    assert m["annual_return"] == pytest.approx(1.01**252 - 1)


def test_a_run_that_goes_to_zero() -> None:
    m = compute_metrics(series([50.0, 10.0, 0.0, 0.0]), 100.0, EMPTY_LEDGER, 252)
    assert m["total_return"] == -1.0 and m["annual_return"] == -1.0
    assert m["max_drawdown"] == -1.0 and m["final_value"] == 0.0
    assert m["sharpe"] is not None and m["max_drawdown_recovery"] is None


def test_all_cash_against_a_rising_benchmark() -> None:
    equity = series([100.0] * 30)
    bench = series([100.0 + i for i in range(30)])
    m = compute_metrics(equity, 100.0, EMPTY_LEDGER, 252, bench, "QQQ")
    assert m["benchmark_return"] == pytest.approx(29 / 100)
    assert m["excess_return"] == pytest.approx(-0.29)
    assert m["beta"] == pytest.approx(0.0) and m["beats_benchmark"] is False


def test_round_trips_match_fifo_with_fees_apportioned() -> None:
    ts = list(pd.bdate_range("2025-03-03", periods=6))
    ledger = pd.DataFrame(
        [
            (0, ts[0], "buy", "AAA", 10, 100.0, 1.0, "o1", "filled"),
            (1, ts[1], "buy", "AAA", 10, 110.0, 1.0, "o2", "filled"),
            (2, ts[2], "sell", "AAA", 15, 120.0, 1.5, "o3", "filled"),
            (3, ts[3], "short", "BBB", 4, 50.0, 0.0, "o4", "filled"),
            (4, ts[4], "cover", "BBB", 4, 40.0, 0.0, "o5", "filled"),
            (5, ts[5], "buy", "CCC", 1, 10.0, 0.0, "o6", "rejected"),
        ],
        columns=EMPTY_LEDGER.columns,
    )
    trips = round_trips(ledger, pd.DatetimeIndex(ts))
    assert [(t["symbol"], t["side"], t["quantity"]) for t in trips] == [
        ("AAA", "long", 10),
        ("AAA", "long", 5),
        ("BBB", "short", 4),
    ]
    assert trips[0]["pnl"] == pytest.approx(200 - 1.0 - 1.0)  # both legs' fees, pro rata
    assert trips[1]["pnl"] == pytest.approx(50 - 0.5 - 0.5)
    assert trips[2]["pnl"] == pytest.approx(40) and trips[2]["bars"] == 1
    m = compute_metrics(series([100.0] * 6), 100.0, ledger, 252)
    assert m["round_trips"] == 3 and m["win_rate"] == 1.0 and m["profit_factor"] is None
    assert m["trades"] == 5 and m["fees"] == pytest.approx(3.5)


def test_bootstrap_intervals_are_deterministic_and_sensible() -> None:
    rng = np.random.default_rng(1)
    drift = rng.normal(0.002, 0.01, 500)
    low, high = excess_interval(drift, 252)
    assert low is not None and high is not None and 0 < low < drift.mean() * 252 < high
    assert excess_interval(drift, 252) == (low, high)
    noise = rng.normal(0.0, 0.01, 500)
    low, high = excess_interval(noise, 252)
    assert low is not None and high is not None and low < 0 < high
    assert iid_mean_interval(np.array([0.1])) == (None, None)
    lo, hi = iid_mean_interval(np.array([0.10, 0.12, 0.08, 0.11]))
    assert lo is not None and hi is not None and lo <= 0.1025 <= hi


def test_runs_store_their_metrics(lab: Lab, tmp_path: Path) -> None:
    model = lab.models.create("kept", ai_model_id="baseline/buy_and_hold", tickers=["QQQ"])
    run = lab.start_run(model, path="direct", costs="zero", background=False)
    with lab.store.session() as session:
        from ttg_lab.store.schema import TradingRun

        stored = session.get(TradingRun, run.id).metrics  # type: ignore[union-attr]
    fresh = lab.run(run.id).metrics()
    assert stored["total_return"] == fresh["total_return"] == pytest.approx(run.info.final_return)
    assert stored["benchmark"] == "QQQ"
    # buy-and-hold of the benchmark itself, in whole shares: beta is the invested share
    fill = run.ledger().iloc[0]
    invested = fill["quantity"] * fill["fill_price"] / 10_000
    assert stored["beta"] == pytest.approx(invested, abs=0.005)
    assert stored["excess_return"] == pytest.approx(
        invested * stored["benchmark_return"] - stored["benchmark_return"], abs=1e-9
    )
