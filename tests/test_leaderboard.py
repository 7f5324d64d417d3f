"""The leaderboard: latest and best runs, intervals over repeated runs, the benchmark
verdict, cost-aware columns, filters and sorting."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import update

from ttg_lab.errors import ValidationError
from ttg_lab.lab import Lab
from ttg_lab.metrics import store_metrics
from ttg_lab.metrics.comparisons import HOLM_VERDICTS
from ttg_lab.metrics.significance import holm
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


def test_rows_rank_and_are_corrected_only_within_their_market_mode_and_period(lab: Lab) -> None:
    rand = lab.models.create("rand", ai_model_id="baseline/random", initial_cash=100_000.0)
    mom = lab.models.create("mom", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    rev = lab.models.create("rev", ai_model_id="baseline/mean_reversion", initial_cash=100_000.0)
    later = lab.models.create("later", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    runs = [lab.start_run(rand, seed=s, path="direct", background=False) for s in range(3)]
    lab.start_run(mom, path="direct", background=False)
    lab.start_run(rev, path="direct", background=False)
    lab.start_run(later, path="direct", start="2025-08-01", background=False)

    board = lab.leaderboard().set_index("model")
    main = board.loc[["rand", "mom", "rev"]]
    assert main["group"].nunique() == 1 and board.loc["later", "group"] != main["group"].iloc[0]
    assert sorted(main["rank"]) == [1, 2, 3] and board.loc["later", "rank"] == 1
    # the rows of a group sit together, best first within it
    order = list(lab.leaderboard()["group"])
    assert order == sorted(order, key=order.index)  # contiguous groups
    # each row says what backs it: its runs (the repeats) and their bars
    assert board.loc["rand", "n_runs"] == 3 and board.loc["mom", "n_runs"] == 1
    assert board.loc["rand", "n_steps"] == runs[0].metrics()["bars"]
    # Holm within the group (never with the other period's row), a verdict from it
    assert list(main["p_holm"]) == pytest.approx(holm(list(main["p_value"])))
    assert board.loc["later", "p_holm"] == pytest.approx(board.loc["later", "p_value"])
    for _, row in main.iterrows():
        assert 0 <= row["p_value"] <= row["p_holm"] <= 1
        assert row["holm_verdict"] in HOLM_VERDICTS
        significant = row["p_holm"] < 0.05
        assert row["holm_verdict"].startswith("no significant") != significant
        assert pd.notna(row["cohens_d"]) and pd.notna(row["sharpe_diff"])
        assert row["trials"] == 3 and row["dsr"] <= row["psr"]  # deflated by 3 trials
    assert board.loc["later", "trials"] == 1
    assert board.loc["later", "dsr"] == pytest.approx(board.loc["later", "psr"])

    together = lab.leaderboard(across=True).set_index("model")
    assert sorted(together["rank"]) == [1, 2, 3, 4] and set(together["trials"]) == {4}
    assert list(together["p_holm"]) == pytest.approx(holm(list(together["p_value"])))


def test_snooping_adds_each_groups_spa_and_stepm_against_buy_and_hold(lab: Lab) -> None:
    for name, agent in [("mom", "baseline/momentum"), ("rev", "baseline/mean_reversion")]:
        model = lab.models.create(name, ai_model_id=agent, initial_cash=100_000.0)
        lab.start_run(model, path="direct", background=False)
    plain = lab.leaderboard()
    assert plain["spa_p_value"].isna().all() and plain["stepm_beats"].isna().all()
    board = lab.leaderboard(snooping=True)
    assert board["spa_p_value"].nunique() == 1 and 0 <= board["spa_p_value"].iloc[0] <= 1
    assert set(board["stepm_beats"]) <= {True, False}
    # a model StepM finds better has a positive effect; none when SPA finds no edge
    if board["spa_p_value"].iloc[0] >= 0.05:
        assert not board["stepm_beats"].any()
