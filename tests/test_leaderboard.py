"""The leaderboard: latest and best runs, intervals over repeated runs, the benchmark
verdict, cost-aware columns, filters and sorting."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import update

from ttg_lab.errors import ValidationError
from ttg_lab.lab import Lab
from ttg_lab.metrics import store_metrics
from ttg_lab.store.schema import TradingRun


def test_board_ranks_models_with_intervals_and_benchmark_verdicts(lab: Lab) -> None:
    rand = lab.models.create("rand", ai_model_id="baseline/random", initial_cash=100_000.0)
    mom = lab.models.create("mom", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    coins = lab.models.create(
        "coins",
        ai_model_id="baseline/buy_and_hold",
        market="crypto",
        tickers=["BTC-USDT", "ETH-USDT"],
    )
    runs = [lab.start_run(rand, seed=s, path="direct", background=False) for s in range(4)]
    lab.start_run(mom, path="direct", background=False)
    lab.start_run(mom, path="direct", start="2025-08-01", background=False)  # other period
    lab.start_run(coins, path="direct", background=False)

    board = lab.leaderboard()
    assert set(board["model"]) == {"rand", "mom", "coins"}
    assert list(board["sharpe"].dropna()) == sorted(board["sharpe"].dropna(), reverse=True)
    row = board.set_index("model").loc["rand"]
    returns = [r.info.final_return for r in runs]
    assert row["runs"] == 4 and row["latest_run"] == runs[-1].id
    assert row["best_return"] == pytest.approx(max(returns))
    assert row["mean_return"] == pytest.approx(sum(returns) / 4)
    assert row["mean_ci_low"] <= row["mean_return"] <= row["mean_ci_high"]
    assert row["benchmark"] == "QQQ" and row["vs_benchmark"] in {
        "beats the benchmark (significant)",
        "trails the benchmark (significant)",
        "no significant difference",
    }
    # momentum's two runs cover different periods: no interval
    assert pd.isna(board.set_index("model").loc["mom", "mean_return"])
    assert board.set_index("model").loc["coins", "benchmark"] == "CD5"

    assert set(lab.leaderboard(market="crypto")["model"]) == {"coins"}
    assert lab.leaderboard(mode="intraday").empty
    assert set(lab.leaderboard(start="2025-07-01")["model"]) == {"mom"}
    by_return = lab.leaderboard(sort="total_return")
    assert list(by_return["total_return"]) == sorted(by_return["total_return"], reverse=True)
    with pytest.raises(ValidationError, match="cannot sort by"):
        lab.leaderboard(sort="vibes")


def test_cost_aware_columns(lab: Lab) -> None:
    model = lab.models.create("pricey", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    run = lab.start_run(model, path="direct", background=False)
    with lab.store.session() as session:
        session.execute(
            update(TradingRun)
            .where(TradingRun.id == run.id)
            .values(llm_cost=25.0, prompt_tokens=900_000, completion_tokens=100_000, llm_calls=200)
        )
    store_metrics(lab.store, run.id)
    row = lab.leaderboard().set_index("model").loc["pricey"]
    profit = run.info.final_value - 100_000
    assert row["llm_cost"] == 25.0
    assert row["return_per_llm_dollar"] == pytest.approx(profit / 25.0)
    assert row["tokens_per_trade"] == pytest.approx(1_000_000 / run.info.total_trades)


def test_after_init_the_board_ranks_imported_llm_runs_with_the_baselines(lab: Lab) -> None:
    lab.data.load_shipped()  # the shipped AI-Trader runs
    model = lab.models.create(
        "baseline mom", ai_model_id="baseline/momentum", initial_cash=100_000.0
    )
    lab.start_run(model, path="direct", background=False)
    board = lab.leaderboard().set_index("model")
    gpt = board.loc["aitrader-gpt-5-us-hourly"]
    assert gpt["ai_model_id"] == "openai/gpt-5" and gpt["mode"] == "intraday"
    for column in ("total_return", "sharpe", "max_drawdown", "benchmark_return"):
        assert pd.notna(gpt[column]), column
    assert gpt["benchmark"] == "QQQ"
    assert board.loc["aitrader-gpt-5-crypto-daily", "benchmark"] == "CD5"
    assert board.loc["aitrader-gpt-5-cn-daily", "benchmark"] == "000016.SH"
    assert board.loc["aitrader-gpt-5-cn-hourly", "vs_benchmark"] == "no benchmark for these bars"
    assert "baseline-mom" in board.index
    assert len([m for m in board.index if m.startswith("aitrader-")]) == 26
