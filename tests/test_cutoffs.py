"""Knowledge cutoffs: each catalog model's cutoff with its source, the model parameter that
overrides it (bad values refused naming them), the flag of every run (inside the training
window, after it, unknown, forward; baselines none), the leaderboard ranking the groups
apart by default and together when asked, and the reports showing the flag. The LLM runs
are real chat runs against our OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import update
from support.openai_server import ChatRequest, OpenAIStubServer, Reply, Text, ToolCalls
from test_widgets import html_of

from ttg_lab.cli import main, output
from ttg_lab.errors import ValidationError
from ttg_lab.lab import Lab
from ttg_lab.llm.catalog import CATALOG_PATH, load_catalog
from ttg_lab.llm.cutoffs import model_cutoff, training_flag
from ttg_lab.reports.comparison import comparison_report
from ttg_lab.store.schema import TradingRun
from widgets import leaderboard
from widgets.leaderboard import LeaderboardController
from widgets.performance import PerformanceController

START, END = "2025-07-01", "2025-07-03"  # three trading days: DDOG rose, AXON fell
FINISH = "DECISION: done.\nREFLECTION: fine.\n<FINISH_SIGNAL>"
BUYS = {"good": "DDOG", "openai/gpt-5": "AXON"}
"""What each served model buys on its first step (any other buys nothing)."""


def trader(request: ChatRequest) -> Reply:
    """Step by step: the served model's buy (if any), then finish."""
    symbol = BUYS.get(request.model)
    if symbol and not any(m["role"] == "tool" for m in request.messages):
        return ToolCalls([("buy", {"symbol": symbol, "quantity": 10})])
    return Text(FINISH, completion_tokens=5)


def stub_parameters(server: OpenAIStubServer, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": server.base_url,
        "max_retries": 0,
        "timeout": 5.0,
        "tool_mode": "native",
        "input_per_mtok": 0.0,
        "output_per_mtok": 0.0,
        **extra,
    }


# ------------------------------------------------------------------ the cutoffs ---------
def test_every_catalog_model_has_a_cutoff_or_unknown_with_its_source() -> None:
    models = load_catalog().models.values()
    assert models
    for entry in models:
        assert entry.cutoff_source, entry.id  # where the cutoff (or its absence) is stated
        cutoff = model_cutoff(entry.id, {})
        if entry.knowledge_cutoff is None:
            assert cutoff is None and entry.cutoff_source.startswith("unknown")
        else:
            assert cutoff is not None and cutoff.source == f"catalog: {entry.cutoff_source}"
    gpt = model_cutoff("openai/gpt-5", {})
    assert gpt is not None and gpt.last_day == date(2024, 9, 30)
    claude = model_cutoff("anthropic/claude-3.7-sonnet", {})  # a month: its last day
    assert claude is not None and claude.text == "2024-11"
    assert claude.last_day == date(2024, 11, 30)


def test_the_knowledge_cutoff_parameter_overrides_the_catalog(lab: Lab) -> None:
    model = lab.models.create(
        "gpt late", ai_model_id="openai/gpt-5", parameters={"knowledge_cutoff": "2025-06"}
    )
    assert model.parameters["knowledge_cutoff"] == "2025-06"
    cutoff = model_cutoff(model.ai_model_id, model.parameters)
    assert cutoff is not None and cutoff.last_day == date(2025, 6, 30)
    assert cutoff.source == "the model's parameters"
    local = model_cutoff("local/smollm2", {"knowledge_cutoff": "2024-06-15"})
    assert local is not None and local.last_day == date(2024, 6, 15)
    assert model_cutoff("local/smollm2", {}) is None  # not in the catalog: unknown


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2025-13", r"no real month or day: '2025-13'"),
        ("2025-02-30", r"no real month or day: '2025-02-30'"),
        ("2025", r"must be a month YYYY-MM or a day YYYY-MM-DD, got '2025'"),
        ("June 2025", r"must be a month YYYY-MM or a day YYYY-MM-DD, got 'June 2025'"),
        ("2025-6", r"must be a month YYYY-MM or a day YYYY-MM-DD, got '2025-6'"),
        (202506, r"knowledge_cutoff must be text, got 202506"),
    ],
)
def test_bad_cutoffs_are_refused_naming_the_value(lab: Lab, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        lab.models.create(
            "bad cutoff", ai_model_id="openai/gpt-5", parameters={"knowledge_cutoff": value}
        )
    assert "bad cutoff" not in {m.name for m in lab.models.list()}  # nothing half-made


def test_a_baseline_takes_no_cutoff(lab: Lab) -> None:
    with pytest.raises(ValidationError, match=r"unknown parameter.*knowledge_cutoff"):
        lab.models.create(
            "mom", ai_model_id="baseline/momentum", parameters={"knowledge_cutoff": "2025-01"}
        )


def test_a_bad_catalog_cutoff_is_refused_naming_the_model(tmp_path: Path) -> None:
    raw = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    raw["models"][0]["knowledge_cutoff"] = "2024-9"
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ValidationError, match=r"knowledge_cutoff of openai/gpt-5 .*'2024-9'"):
        load_catalog(path)


# --------------------------------------------------------------- the flag per run -------
@pytest.mark.parametrize(
    ("ai_model_id", "parameters", "start", "forward", "window"),
    [
        ("openai/gpt-5", {}, datetime(2024, 9, 30, 9, 30), False, "inside"),  # on the day
        ("openai/gpt-5", {}, datetime(2024, 10, 1), False, "after"),
        ("anthropic/claude-3.7-sonnet", {}, datetime(2024, 11, 30), False, "inside"),
        ("anthropic/claude-3.7-sonnet", {}, datetime(2024, 12, 1), False, "after"),
        ("openai/gpt-5", {"knowledge_cutoff": "2025-07"}, datetime(2025, 7, 1), False, "inside"),
        ("qwen/qwen3-max", {}, datetime(2025, 7, 1), False, "unknown"),
        ("aitrader/some-model", {}, datetime(2025, 7, 1), False, "unknown"),
        ("qwen/qwen3-max", {}, datetime(2025, 7, 1), True, "after"),  # forward: always after
        ("openai/gpt-5", {"knowledge_cutoff": "2030-01"}, datetime(2025, 7, 1), True, "after"),
        ("baseline/momentum", {}, datetime(2024, 1, 1), False, None),  # no LLM: no flag
        ("policy/mine", {}, datetime(2024, 1, 1), True, None),
    ],
)
def test_a_run_is_inside_its_training_window_when_it_starts_on_or_before_the_cutoff(
    ai_model_id: str,
    parameters: dict[str, Any],
    start: datetime,
    forward: bool,
    window: str | None,
) -> None:
    assert training_flag(ai_model_id, parameters, start, forward).window == window


def test_runs_are_flagged_and_ranked_apart_unless_asked_together(
    lab: Lab, db_url: str, openai_stub: OpenAIStubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "test-key-for-the-local-stub")
    openai_stub.reset(trader)
    models = {
        "inside": lab.models.create(  # buys DDOG, which rose: the best return
            "inside",
            ai_model_id="openai-compatible/good",
            parameters=stub_parameters(openai_stub, knowledge_cutoff="2025-07"),
        ),
        "after": lab.models.create(  # the catalog's cutoff, 2024-09-30; buys AXON
            "after", ai_model_id="openai/gpt-5", parameters=stub_parameters(openai_stub)
        ),
        "unknown": lab.models.create(  # no cutoff anywhere; buys nothing
            "unknown", ai_model_id="openai-compatible/flat", parameters=stub_parameters(openai_stub)
        ),
        "baseline": lab.models.create("baseline", ai_model_id="baseline/cash"),
    }
    runs = {}
    for name, model in models.items():
        path = "direct" if name == "baseline" else "chat"
        run = lab.start_run(model, start=START, end=END, path=path, background=False)
        assert run.status == "completed", run.info.error
        runs[name] = run
    assert {n: r.training_flag.window for n, r in runs.items()} == {
        "inside": "inside",
        "after": "after",
        "unknown": "unknown",
        "baseline": None,
    }

    apart = lab.leaderboard(sort="total_return")
    assert list(apart["model"]) == ["baseline", "after", "unknown", "inside"]
    assert list(apart["training_window"].fillna("")) == ["", "after", "unknown", "inside"]
    assert list(apart["knowledge_cutoff"].fillna("")) == ["", "2024-09-30", "", "2025-07"]
    together = lab.leaderboard(sort="total_return", training_apart=False)
    assert list(together["model"]) == ["inside", "unknown", "baseline", "after"]
    assert list(together["total_return"]) == sorted(together["total_return"], reverse=True)

    # a model's runs of two windows never share a row; a forward run is always after
    late = lab.start_run(models["after"], start=START, end=END, background=False)
    with lab.store.session() as session:
        session.execute(update(TradingRun).where(TradingRun.id == late.id).values(forward=True))
    board = lab.leaderboard(sort="total_return")
    rows = board[board["model"] == "after"]
    assert list(zip(rows["forward"], rows["training_window"], strict=True)) == [
        (False, "after"),
        (True, "after"),
    ]
    early = lab.start_run(models["after"], start=START, end=END, background=False)
    with lab.store.session() as session:
        snapshot = session.get(TradingRun, early.id).strategy_snapshot  # type: ignore[union-attr]
        snapshot["model"]["parameters"]["knowledge_cutoff"] = "2025-12"  # as if set then
        session.execute(
            update(TradingRun).where(TradingRun.id == early.id).values(strategy_snapshot=snapshot)
        )
    board = lab.leaderboard(sort="total_return")
    windows = board[(board["model"] == "after") & ~board["forward"]]["training_window"]
    assert sorted(windows) == ["after", "inside"]
    assert board.iloc[-1]["training_window"] == "inside"

    # the reports say it
    inside_report = runs["inside"].report()
    assert "inside the training window" in inside_report
    assert "· training window: inside (cutoff 2025-07) ·" in inside_report  # its first line
    perf = PerformanceController(lab)  # the dashboard's run summary
    perf.run_ids = [runs["inside"].id, runs["baseline"].id]
    assert perf.show(), perf.error
    assert [r["training_window"] for r in perf.summary] == ["inside (cutoff 2025-07)", "not an LLM"]
    assert "knowledge cutoff 2025-07 (the model&#x27;s parameters)" in inside_report
    after_report = runs["after"].report()
    assert "after the knowledge cutoff 2024-09-30 (catalog: OpenAI" in after_report
    assert "unknown: no knowledge cutoff is known" in runs["unknown"].report()
    assert "not an LLM: no training window" in runs["baseline"].report()
    compared = comparison_report(lab, [runs["inside"].id, runs["after"].id]).read_text()
    assert "inside (cutoff 2025-07)" in compared and "after (cutoff 2024-09-30)" in compared

    # the dashboard shows the flag and ranks together when ticked
    panel = LeaderboardController(lab)
    panel.sort = "total_return"
    panel.refresh()
    assert [r["model"] for r in panel.rows] == list(board["model"])
    assert "<th>training_window</th>" in html_of(leaderboard.view(panel))
    panel.training_together = True
    panel.refresh()
    assert panel.rows[0]["training_window"] == "inside"

    # the command line shows the flag (a column, or a table's title when its rows share
    # one window) and takes --training-together
    monkeypatch.setattr(output.console, "width", 400)  # every column unsqueezed
    printed = []
    for extra in ([], ["--training-together"]):
        shown = CliRunner().invoke(main, ["--db", db_url, "leaderboard", *extra])
        assert shown.exit_code == 0, shown.output
        printed.append(shown.output)
    apart, together = printed
    titles = [line.strip() for line in apart.splitlines() if " - " in line and "│" not in line]
    assert titles[-1].endswith("- inside the training window, ranked apart")
    rows = [line.split("│") for line in apart.splitlines() if line.count("│") > 3]
    assert rows[-1][1].strip() == "after"  # its run inside the window: last, apart
    assert "training_window" in apart  # the first table's rows: a baseline and LLM runs
    assert "ranked apart" not in together and "training_window" in together


def test_imported_aitrader_runs_take_their_models_cutoffs_from_the_catalog(lab: Lab) -> None:
    lab.data.load_shipped()  # AI-Trader's published runs, October and November 2025
    board = lab.leaderboard().set_index("model")
    imported = board[board.index.str.startswith("aitrader-")]
    for model_id, window, cutoff in [
        ("openai/gpt-5", "after", "2024-09-30"),
        ("anthropic/claude-3.7-sonnet", "after", "2024-11"),
        ("google/gemini-2.5-flash", "after", "2025-01"),
        ("deepseek/deepseek-chat-v3.1", "unknown", None),
        ("qwen/qwen3-max", "unknown", None),
    ]:
        rows = imported[imported["ai_model_id"] == model_id]
        assert len(rows) > 0, model_id
        assert set(rows["training_window"]) == {window}, model_id
        assert set(rows["knowledge_cutoff"].fillna("")) == {cutoff or ""}, model_id
    ranks = [{"after": 0, "unknown": 1}[w] for w in board["training_window"]]
    assert ranks == sorted(ranks)  # every run after its cutoff ranks before the unknown ones
