"""Repeats: ``start_run(..., repeats=N)`` starts N runs of a model over one period and
mode with seeds ``seed + i``, grouped as one experiment that only its owner sees, and the
leaderboard's interval for the model comes from exactly those runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select, update
from support.openai_server import OpenAIStubServer, Text
from test_llm_quirks import make_model

import ttg_lab
from ttg_lab.agents.factory import seeded
from ttg_lab.engine.events import RunEvent
from ttg_lab.engine.snapshot import ModelConfig
from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.lab import Lab
from ttg_lab.metrics.bootstrap import iid_mean_interval
from ttg_lab.run import Experiment, Run
from ttg_lab.store.schema import ExperimentRow, TradingRun

PERIOD = {"start": "2025-06-10", "end": "2025-06-24"}
TICKERS = ["AAPL", "MSFT", "NVDA"]
FINISH = "DECISION: hold.\nREFLECTION: fine.\n<FINISH_SIGNAL>"


def counts(lab: Lab) -> tuple[int, int]:
    with lab.store.session() as session:
        return (
            session.scalar(select(func.count()).select_from(TradingRun)) or 0,
            session.scalar(select(func.count()).select_from(ExperimentRow)) or 0,
        )


def test_repeats_are_one_experiment_on_the_board_with_the_interval_of_exactly_its_runs(
    lab: Lab,
) -> None:
    rand = lab.models.create("rand", ai_model_id="baseline/random", tickers=TICKERS)
    alone = lab.start_run(rand, path="direct", background=False, seed=99, **PERIOD)
    experiment = lab.start_run(rand, path="direct", seed=5, repeats=3, name="three", **PERIOD)
    assert isinstance(experiment, Experiment) and isinstance(alone, Run)
    assert experiment.wait(timeout=120) == "completed"
    assert [run.info.snapshot.seed for run in experiment.runs] == [5, 6, 7]
    assert {run.info.start for run in experiment.runs} == {alone.info.start}
    returns = [run.metrics()["total_return"] for run in experiment.runs]
    assert len(set(returns)) > 1  # different seeds, different trades
    assert experiment.info.repeats == 3 and experiment.info.name == "three"
    assert lab.experiment(experiment.id).info.run_ids == tuple(r.id for r in experiment.runs)
    assert [e.id for e in lab.experiments()] == [experiment.id]
    assert list(lab.runs().table()["experiment"].fillna(0)) == [experiment.id] * 3 + [0]

    row = lab.leaderboard().set_index("model").loc["rand"]
    assert row["runs"] == 4 and row["repeats"] == 3 and row["experiment"] == experiment.id
    low, high = iid_mean_interval(np.array(returns))  # the run on its own is not a repeat
    assert row["mean_return"] == pytest.approx(float(np.mean(returns)))
    assert (row["mean_ci_low"], row["mean_ci_high"]) == pytest.approx((low, high))
    assert row["mean_ci_low"] <= row["mean_return"] <= row["mean_ci_high"]
    summary = experiment.summary()
    assert summary.repeats == 3 and summary.mean_return == pytest.approx(row["mean_return"])
    assert (summary.ci_low, summary.ci_high) == pytest.approx((low, high))


def test_a_board_row_from_one_repeat_has_no_interval(lab: Lab) -> None:
    rand = lab.models.create("rand", ai_model_id="baseline/random", tickers=TICKERS)
    experiment = lab.start_run(rand, path="direct", repeats=1, background=False, **PERIOD)
    assert experiment.status == "completed" and len(experiment.runs) == 1
    row = lab.leaderboard().set_index("model").loc["rand"]
    assert row["repeats"] == 1 and row["experiment"] == experiment.id
    assert row[["mean_return", "mean_ci_low", "mean_ci_high"]].isna().all()
    assert experiment.summary().ci_low is None


def test_the_board_names_an_experiment_by_its_id_beside_runs_without_one(lab: Lab) -> None:
    rand = lab.models.create("rand", ai_model_id="baseline/random", tickers=TICKERS)
    alone = lab.models.create("alone", ai_model_id="baseline/momentum", tickers=TICKERS)
    experiment = lab.start_run(rand, path="direct", repeats=1, background=False, **PERIOD)
    lab.start_run(alone, path="direct", background=False, **PERIOD)
    board = lab.leaderboard().set_index("model")["experiment"]
    assert board.loc["rand"] == experiment.id and str(board.loc["rand"]) == str(experiment.id)
    assert board.loc["alone"] is pd.NA


def test_another_user_does_not_see_an_experiment(lab: Lab, db_url: str) -> None:
    rand = lab.models.create("rand", ai_model_id="baseline/random", tickers=TICKERS)
    experiment = lab.start_run(rand, path="direct", repeats=2, background=False, **PERIOD)
    bob = lab.users.add("bob@team.org", "Bob", username="bob")
    other = ttg_lab.open(db_url, user=bob.username)
    try:
        assert other.experiments() == []
        with pytest.raises(NotFoundError, match=f"no experiment {experiment.id}"):
            other.experiment(experiment.id)
        assert other.leaderboard().empty
        assert other.runs().table().empty
    finally:
        other.close()


@pytest.mark.parametrize("repeats", [0, -1, 101, True, 2.0, "3"])
def test_bad_repeats_are_refused_naming_the_value_and_nothing_is_written(
    lab: Lab, repeats: object
) -> None:
    rand = lab.models.create("rand", ai_model_id="baseline/random", tickers=TICKERS)
    before = counts(lab)
    with pytest.raises(ValidationError, match=f"repeats must be .* got {repeats!r}"):
        lab.start_run(rand, path="direct", repeats=repeats, **PERIOD)  # type: ignore[call-overload]
    assert counts(lab) == before


def test_a_repeat_that_cannot_start_writes_nothing(lab: Lab) -> None:
    rand = lab.models.create("rand", ai_model_id="baseline/random", tickers=TICKERS)
    before = counts(lab)
    with pytest.raises(ValidationError, match="no 1d bars"):
        lab.start_run(rand, path="direct", repeats=3, start="1990-01-01", end="1990-02-01")
    with pytest.raises(ValidationError, match="replay"):
        lab.start_run(rand, repeats=2, replay_from=1, **PERIOD)
    assert counts(lab) == before


def test_each_llm_repeat_sends_its_own_seed_to_the_provider(lab: Lab) -> None:
    """Repeats of a model on an OpenAI-compatible server: every request of repeat i
    carries ``seed`` = seed + i, and the snapshot records it (so a replay knows)."""
    with OpenAIStubServer(lambda _request: Text(FINISH, completion_tokens=5)) as server:
        model = make_model(lab, server, "openai-compatible/any", tool_mode="native")
        experiment = lab.start_run(
            model, seed=10, repeats=2, costs="zero", start="2025-07-01", end="2025-07-02"
        )
        assert experiment.wait(60) == "completed", [r.info.error for r in experiment.runs]
        seeds = sorted(request.raw.get("seed") for request in server.requests)
    assert seeds == [10, 10, 11, 11]  # two steps each, one call per step
    assert [r.info.snapshot.model.parameters["seed"] for r in experiment.runs] == [10, 11]


def test_the_run_seed_becomes_the_llm_request_seed_unless_the_model_fixes_one() -> None:
    from ttg_lab.llm.providers import llm_settings, make_chat_model

    def config(ai_model_id: str, parameters: dict[str, object]) -> ModelConfig:
        return ModelConfig("m", "m", "us", ai_model_id, dict(parameters), 1000.0, [], "", "")

    llm = seeded(config("local/smollm2", {}), 7)
    assert llm.parameters["seed"] == 7
    assert make_chat_model(llm_settings(llm.ai_model_id, llm.parameters)).seed == 7
    assert seeded(config("local/smollm2", {"seed": 3}), 7).parameters["seed"] == 3
    assert "seed" not in seeded(config("baseline/random", {}), 7).parameters


def test_resuming_an_experiment_runs_only_the_repeats_that_did_not_complete(lab: Lab) -> None:
    rand = lab.models.create("rand", ai_model_id="baseline/random", tickers=TICKERS)
    experiment = lab.start_run(rand, path="direct", repeats=3, background=False, **PERIOD)
    broken = experiment.runs[1].id
    with lab.store.session() as session:  # as if the second repeat had failed
        session.execute(
            update(TradingRun)
            .where(TradingRun.id == broken)
            .values(status="failed", worker=None, heartbeat_at=None)
        )
    assert lab.experiment(experiment.id).status == "failed"
    again = lab.experiment(experiment.id).resume(background=False)
    assert again.status == "completed"
    with lab.store.session() as session:
        attempts = dict(
            session.execute(
                select(TradingRun.id, TradingRun.attempt).where(
                    TradingRun.experiment_id == experiment.id
                )
            ).all()
        )
    assert attempts == {r.id: (1 if r.id == broken else 0) for r in experiment.runs}


def test_the_dashboard_board_shows_the_repeats_and_their_interval(lab: Lab) -> None:
    from test_widgets import html_of

    from widgets import leaderboard

    rand = lab.models.create("rand", ai_model_id="baseline/random", tickers=TICKERS)
    lab.start_run(rand, path="direct", repeats=2, background=False, **PERIOD)
    shown = html_of(leaderboard.view(leaderboard.LeaderboardController(lab)))
    # the runs behind the row (n_runs: the repeats) and the interval their spread gives
    assert "<th>n_runs</th>" in shown and "<th>mean_ci_low</th>" in shown
    assert lab.leaderboard().set_index("model").loc["rand", "n_runs"] == 2


def test_repeats_run_here_are_recorded_as_each_starts_never_left_waiting_as_running(
    lab: Lab,
) -> None:
    """With background=False the repeats run one after another in this thread: a repeat
    still waiting must not be a 'running' row whose heartbeat never beats (it would look
    abandoned to any other process)."""
    rand = lab.models.create("rand", ai_model_id="baseline/random", tickers=TICKERS)
    seen: dict[int, int] = {}

    def on_event(event: RunEvent) -> None:
        if event.kind == "step" and event.run_id not in seen:
            with lab.store.session() as session:
                seen[event.run_id] = (
                    session.scalar(select(func.count()).select_from(TradingRun)) or 0
                )

    experiment = lab.start_run(
        rand, path="direct", repeats=3, background=False, on_event=on_event, **PERIOD
    )
    assert experiment.status == "completed"
    assert list(seen.values()) == [1, 2, 3]
