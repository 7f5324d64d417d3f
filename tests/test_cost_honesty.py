"""Cost honesty: runs compared under different cost models are flagged, imported AI-Trader
runs (no fees) are shown re-priced under the default cost model beside their own figures,
and an LLM spend the lab cannot vouch for reads "unknown" at every outlet, never 0.00
(a free local model's 0 is known and reads as such)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from support.openai_server import ChatRequest, OpenAIStubServer, Reply, Text, ToolCalls

from ttg_lab.broker.costs import COST_PRESETS, BookedFill, CostModel, repriced_values
from ttg_lab.cli import main
from ttg_lab.cli.output import console
from ttg_lab.cli.runs import SUMMARY_FORMATS, run_summary
from ttg_lab.engine.snapshot import RunSnapshot
from ttg_lab.errors import ValidationError
from ttg_lab.formatting import BOARD_FORMATS, llm_cost_text
from ttg_lab.importers.aitrader import import_aitrader
from ttg_lab.importers.aitrader.reprice import reprice_run
from ttg_lab.lab import Lab
from ttg_lab.llm.spend import llm_cost, run_llm_cost
from ttg_lab.reports import comparison_report, render_run_report
from ttg_lab.store.schema import TradingRun
from widgets.common import table_html

AITRADER_MODEL = Path(__file__).parent / "fixtures" / "aitrader" / "agent_data_crypto" / "gpt-5"
START, END = "2025-07-01", "2025-07-03"
FINISH = "DECISION: bought AAPL.\nREFLECTION: fine.\n<FINISH_SIGNAL>"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables printed wide enough that no cell is cut to an ellipsis."""
    monkeypatch.setattr(console, "width", 600)


def cli(db_url: str, *args: str) -> str:
    result = CliRunner().invoke(main, ["--db", db_url, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def baseline(lab: Lab, name: str) -> Any:
    return lab.models.create(name, ai_model_id="baseline/momentum", initial_cash=100_000.0)


# -- cost models ---------------------------------------------------------------------


def test_a_board_of_runs_under_two_cost_models_flags_them_and_names_each(
    lab: Lab, db_url: str
) -> None:
    priced, free = baseline(lab, "priced"), baseline(lab, "free")
    lab.start_run(priced, path="direct", costs="default", background=False)
    lab.start_run(free, path="direct", costs="zero", background=False)

    board = lab.leaderboard().set_index("model")
    assert board.loc["priced", "cost_model"] == "default"
    assert board.loc["free", "cost_model"] == "zero"
    assert board["costs_differ"].tolist() == [True, True]
    printed = " ".join(cli(db_url, "leaderboard").split())
    assert "note: the rows were priced under different cost models (default: priced" in printed

    lab.start_run(free, path="direct", costs="ibkr-fixed", background=False)
    mixed = lab.leaderboard().set_index("model")
    assert mixed.loc["free", "cost_model"] == "mixed: ibkr-fixed, zero"
    assert mixed["costs_differ"].all()


def test_a_board_under_one_cost_model_is_not_flagged(lab: Lab, db_url: str) -> None:
    for name in ("a", "b"):
        lab.start_run(baseline(lab, name), path="direct", background=False)
    board = lab.leaderboard()
    assert board["cost_model"].tolist() == ["default", "default"]
    assert not board["costs_differ"].any()
    assert "cost models" not in cli(db_url, "leaderboard")


def test_rows_never_ranked_together_are_not_flagged_for_their_cost_models(lab: Lab) -> None:
    """Rows of different markets are not compared (not ranked together): their cost models
    may differ without a flag; ``across=True`` compares them, and flags them."""
    lab.start_run(baseline(lab, "us"), path="direct", costs="default", background=False)
    coins = lab.models.create(
        "coins", ai_model_id="baseline/momentum", market="crypto", tickers=["BTC-USDT"]
    )
    lab.start_run(coins, path="direct", costs="zero", background=False)
    assert not lab.leaderboard()["costs_differ"].any()
    assert lab.leaderboard(across=True)["costs_differ"].all()


def test_a_custom_cost_model_is_named_by_its_fields() -> None:
    custom = CostModel(commission_bps=5.0, slippage_bps=1.0)
    assert custom.name == "custom (5 bp commission, 1 bp slippage)"
    assert COST_PRESETS["ibkr-fixed"].name == "ibkr-fixed"


def test_a_comparison_of_runs_under_different_cost_models_says_so(lab: Lab, tmp_path: Path) -> None:
    model = baseline(lab, "cmp")
    a = lab.start_run(model, path="direct", costs="default", background=False)
    b = lab.start_run(model, path="direct", costs="zero", background=False)
    c = lab.start_run(model, path="direct", costs="default", seed=1, background=False)
    flagged = comparison_report(lab, [a.id, b.id], tmp_path / "ab.html").read_text()
    assert "priced under different cost models" in flagged
    assert f"default: cmp (run {a.id}); zero: cmp (run {b.id})" in flagged
    same = comparison_report(lab, [a.id, c.id], tmp_path / "ac.html").read_text()
    assert "priced under different cost models" not in same


# -- re-pricing imported runs ----------------------------------------------------------


def test_repricing_a_small_ledger_equals_the_hand_computation() -> None:
    costs = CostModel(commission_bps=10.0, per_share=0.01, min_per_order=1.0, slippage_bps=20.0)
    values = [1000.0, 1010.0, 990.0, 1005.0]
    fills = [
        BookedFill(1, "buy", 5.0, 100.0, 0.0),  # 5 x 100: slip 5*0.2=1; fee max(1, 0.501+0.05)=1
        BookedFill(2, "sell", 2.0, 50.0, 0.0),  # slip 2*0.1=0.2; fee max(1, 0.0998+0.02)=1
        BookedFill(2, "cover", 100.0, 20.0, 0.25),  # slip 4; fee 2.008+1=3.008, 0.25 paid
    ]
    step1 = 1.0 + 1.0
    step2 = 0.2 + 1.0 + (100 * 20 * 0.002) + (100 * 20.04 * 0.001 + 100 * 0.01) - 0.25
    assert repriced_values(values, fills, costs) == pytest.approx(
        [1000.0, 1010.0 - step1, 990.0 - step1 - step2, 1005.0 - step1 - step2]
    )
    assert repriced_values(values, fills, COST_PRESETS["zero"]) == pytest.approx(
        [1000.0, 1010.0, 990.0 - 0.25 * 0 - (-0.25), 1005.0 + 0.25]
    )  # zero costs give back only the fees the book had paid
    with pytest.raises(ValidationError, match="fill at step 4 outside the book's 4 steps"):
        repriced_values(values, [BookedFill(4, "buy", 1.0, 1.0, 0.0)], costs)


def test_an_imported_run_shows_its_repriced_figures_beside_its_own(
    lab: Lab, db_url: str, tmp_path: Path
) -> None:
    [run_id] = import_aitrader(lab.store, AITRADER_MODEL, owner_id=lab.user.id)
    run = lab.run(run_id)
    own = run.metrics()
    ledger = run.ledger()
    fills = ledger[(ledger["status"] == "filled") & ledger["fill_price"].notna()]
    default = COST_PRESETS["default"]
    by_hand = 0.0
    for fill in fills.itertuples():  # 2 bp slippage, then 1 bp commission on the slipped price
        slipped = fill.fill_price * (1 + (2e-4 if fill.action in ("buy", "cover") else -2e-4))
        by_hand += fill.quantity * abs(slipped - fill.fill_price)
        by_hand += fill.quantity * slipped * 1e-4
    assert by_hand > 0 and len(fills) == 16

    repriced = reprice_run(lab.store, run_id)
    assert repriced.cost_model == "default"
    assert repriced.extra_costs == pytest.approx(by_hand)
    assert repriced.final_value == pytest.approx(own["final_value"] - by_hand)
    assert repriced.total_return == pytest.approx(repriced.final_value / 50_000.0 - 1)
    assert repriced.sharpe is not None and repriced.sharpe < own["sharpe"]

    row = lab.leaderboard().set_index("model").loc["aitrader-gpt-5-crypto-daily"]
    assert row["cost_model"] == "zero" and row["repriced_under"] == "default"
    assert row["total_return"] == pytest.approx(own["total_return"])  # its own, beside
    assert row["repriced_return"] == pytest.approx(repriced.total_return)
    assert row["repriced_final_value"] == pytest.approx(repriced.final_value)
    assert row["repriced_sharpe"] == pytest.approx(repriced.sharpe)

    report = render_run_report(run)
    assert "under the default cost model: final value" in report
    assert f"{repriced.final_value:,.2f}" in report and f"{own['final_value']:,.2f}" in report
    momentum = lab.start_run(
        lab.models.create(
            "coins", ai_model_id="baseline/momentum", market="crypto", tickers=["BTC-USDT"]
        ),
        path="direct",
        start="2025-11-01",
        end="2025-11-06",
        background=False,
    )
    compared = comparison_report(lab, [run_id, momentum.id], tmp_path / "c.html").read_text()
    assert "re-priced" in compared and f"{repriced.final_value:,.2f}" in compared
    assert "priced under different cost models" in compared  # zero against default
    assert lab.leaderboard()["costs_differ"].all()
    assert default.name == "default"


def test_only_a_zero_cost_book_is_repriced(lab: Lab) -> None:
    run = lab.start_run(baseline(lab, "lab run"), path="direct", background=False)
    with pytest.raises(ValidationError, match="priced under the default cost model"):
        reprice_run(lab.store, run.id)
    assert pd.isna(lab.leaderboard().loc[0, "repriced_return"])


# -- unknown LLM cost -----------------------------------------------------------------


def uncounted_trader(prompt_tokens: int | None) -> Callable[[ChatRequest], Reply]:
    """Each step: buy 1 AAPL, finish; every answer's usage says ``prompt_tokens``."""

    def respond(request: ChatRequest) -> Reply:
        if not any(m["role"] == "tool" for m in request.messages):
            buy = ("buy", {"symbol": "AAPL", "quantity": 1})
            return ToolCalls([buy], prompt_tokens=prompt_tokens, completion_tokens=0)
        return Text(FINISH, prompt_tokens=prompt_tokens, completion_tokens=0)

    return respond


def llm_run(lab: Lab, server: OpenAIStubServer, ai_model_id: str, **prices: float) -> Any:
    model = lab.models.create(
        f"llm {ai_model_id}",
        ai_model_id=ai_model_id,
        tickers=["AAPL"],
        parameters={
            "base_url": server.base_url,
            "max_retries": 0,
            "timeout": 5.0,
            "tool_mode": "native",
            **prices,
        },
    )
    run = lab.start_run(model, start=START, end=END, costs="zero", background=False)
    assert run.status == "completed", run.info.error
    return run


def outlets(lab: Lab, db_url: str, run: Any, model: str) -> dict[str, str]:
    """How each outlet shows the run's LLM cost."""
    board = lab.leaderboard().set_index("model")
    summary = run_summary([run])
    return {
        "board": BOARD_FORMATS["llm_cost"](board.loc[model, "llm_cost"]),
        "cli board": cli(db_url, "leaderboard"),
        "widget": table_html(board.reset_index()[["model", "llm_cost"]], BOARD_FORMATS),
        "report": render_run_report(run).split("LLM usage", 1)[1][:200],
        "cli summary": SUMMARY_FORMATS["llm_cost"](summary.loc[0, "llm_cost"]),
        "metrics": llm_cost_text(run.metrics()["llm_cost"]),
    }


def test_calls_answered_without_a_token_count_make_a_priced_runs_cost_unknown_everywhere(
    lab: Lab, db_url: str, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(uncounted_trader(prompt_tokens=0))
    run = llm_run(lab, openai_stub, "openai-compatible/x", input_per_mtok=3.0, output_per_mtok=9.0)
    assert run.info.llm_calls > 0 and run.info.llm_cost == 0.0  # what was recorded
    cost = run_llm_cost(lab.store, run.id)
    assert cost.usd is None and "without a token count" in cost.why_unknown
    for outlet, text in outlets(lab, db_url, run, run.info.model).items():
        assert "unknown" in text, outlet
        assert "0.00" not in text.split("unknown")[0][-12:], outlet
    assert pd.isna(lab.leaderboard().loc[0, "return_per_llm_dollar"])


def test_a_free_local_models_cost_is_a_known_zero_everywhere(
    lab: Lab, db_url: str, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(uncounted_trader(prompt_tokens=0))  # free: no count needed
    run = llm_run(lab, openai_stub, "local/smollm2")
    assert run_llm_cost(lab.store, run.id).usd == 0.0
    for outlet, text in outlets(lab, db_url, run, run.info.model).items():
        assert "0.00" in text, outlet
        if outlet != "cli board":
            assert "unknown" not in text, outlet


def test_a_counted_priced_run_shows_its_cost(
    lab: Lab, db_url: str, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(uncounted_trader(prompt_tokens=1000))
    run = llm_run(lab, openai_stub, "openai-compatible/x", input_per_mtok=3.0, output_per_mtok=9.0)
    cost = run_llm_cost(lab.store, run.id)
    assert cost.usd == pytest.approx(run.info.llm_cost) and cost.usd > 0
    assert cost.text == f"${cost.usd:,.4f}"


def test_an_imported_runs_llm_cost_is_unknown_in_every_outlet(lab: Lab, db_url: str) -> None:
    [run_id] = import_aitrader(lab.store, AITRADER_MODEL, owner_id=lab.user.id)
    run = lab.run(run_id)
    assert run_llm_cost(lab.store, run_id).why_unknown.startswith("imported run")
    for outlet, text in outlets(lab, db_url, run, "aitrader-gpt-5-crypto-daily").items():
        assert "unknown" in text, outlet
    assert pd.isna(run_summary([run]).loc[0, "wasted_llm_cost"])


def test_the_board_derives_an_unknown_cost_over_metrics_stored_before_it_knew(lab: Lab) -> None:
    """Runs imported before the lab told unknown from 0 stored ``llm_cost`` 0.0: the board
    still says unknown (derived from the run, nothing migrated)."""
    [run_id] = import_aitrader(lab.store, AITRADER_MODEL, owner_id=lab.user.id)
    with lab.store.session() as session:
        stored = session.get(TradingRun, run_id)
        assert stored is not None
        stored.metrics = {**stored.metrics, "llm_cost": 0.0}
    row = lab.leaderboard().loc[0]
    assert pd.isna(row["llm_cost"]) and BOARD_FORMATS["llm_cost"](row["llm_cost"]) == "unknown"


def test_a_model_without_a_price_has_an_unknown_cost(lab: Lab) -> None:
    """A run whose snapshot names a model with no known price (one recorded before prices
    were required, or whose catalog entry is gone) spent an unknown sum, never 0.00."""
    run = lab.start_run(baseline(lab, "was llm"), path="direct", background=False)
    data = run.info.snapshot.to_json()
    data["model"] = {**data["model"], "ai_model_id": "openai-compatible/gone", "parameters": {}}
    snapshot = RunSnapshot.from_json(data)
    cost = llm_cost(snapshot, recorded_usd=0.0)
    assert cost.usd is None and cost.text == "unknown"
    assert "no token price for 'openai-compatible/gone'" in cost.why_unknown
    local = {**data["model"], "ai_model_id": "ollama/qwen2.5:7b"}
    assert llm_cost(RunSnapshot.from_json({**data, "model": local}), 0.0).text == "$0.0000"
    assert llm_cost(run.info.snapshot, 0.0).usd == 0.0  # a baseline spends nothing
