"""The memorisation gap: one model over one period masked and unmasked with repeats, the
difference unmasked - masked in return and Sharpe with an interval and a verdict, always
labelled a lower bound; its experiment kind (API, CLI, batch) and its leaderboard column."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sqlalchemy import func, select, update
from support.openai_server import OpenAIStubServer

import ttg_lab
from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.lab import Lab
from ttg_lab.memorisation import MemorisationGap
from ttg_lab.metrics.gap import LOWER_BOUND, ArmRun, memorisation_gap
from ttg_lab.store.schema import ExperimentRow, TradingRun


def arms(
    unmasked: list[float], masked: list[float], sharpe_shift: float = 0.0
) -> tuple[list[ArmRun], list[ArmRun]]:
    """Two arms of runs with these total returns (seeds 0..), Sharpe = 10 x return."""
    return (
        [ArmRun(i, r, 10 * r + sharpe_shift) for i, r in enumerate(unmasked)],
        [ArmRun(i, r, 10 * r) for i, r in enumerate(masked)],
    )


def test_a_known_gap_is_detected_with_the_paired_t_interval() -> None:
    rng = np.random.default_rng(7)
    masked = list(rng.normal(0.01, 0.03, 8))
    unmasked = [m + 0.05 + e for m, e in zip(masked, rng.normal(0, 0.01, 8), strict=True)]
    result = memorisation_gap(*arms(unmasked, masked, sharpe_shift=0.4))
    gap = result.total_return
    test = stats.ttest_rel(unmasked, masked)  # an independent computation
    ci = test.confidence_interval(0.95)
    assert gap.paired and gap.n_pairs == 8
    assert gap.difference == pytest.approx(np.mean(np.subtract(unmasked, masked)))
    assert (gap.ci_low, gap.ci_high) == pytest.approx((ci.low, ci.high))
    assert gap.p_value == pytest.approx(test.pvalue)
    differences = np.subtract(unmasked, masked)
    assert gap.effect_size == pytest.approx(differences.mean() / differences.std(ddof=1))
    assert 0 < gap.ci_low < 0.05 < gap.ci_high
    assert result.verdict == "memorisation suspected"
    assert result.sharpe.verdict == "memorisation suspected"
    assert result.sharpe.difference == pytest.approx(10 * gap.difference + 0.4)
    assert result.lower_bound == LOWER_BOUND and "lower bound" in result.text()
    low, high = gap.ci_low * 100, gap.ci_high * 100
    assert (
        result.text()
        == f"{gap.difference * 100:+.1f}% [{low:.1f}, {high:.1f}] suspected (lower bound)"
    )


def test_equal_arms_give_no_gap_detected() -> None:
    returns = [0.02, -0.01, 0.035, 0.0]
    result = memorisation_gap(*arms(returns, returns))
    for gap in (result.total_return, result.sharpe):
        assert gap.difference == 0.0 and (gap.ci_low, gap.ci_high) == (0.0, 0.0)
        assert gap.p_value == 1.0 and gap.verdict == "no gap detected"
    assert result.text() == "+0.0% [0.0, 0.0] no gap (lower bound)"


def test_float_noise_between_arms_that_booked_the_same_trades_is_no_gap() -> None:
    returns = [0.02, -0.01, 0.035, 0.0]
    noisy = [r + 3e-14 for r in returns]  # the same trades, summed in another order
    result = memorisation_gap(*arms(noisy, returns))
    assert result.total_return.ci_low is not None and result.total_return.ci_low > 0
    assert result.verdict == "no gap detected"
    assert result.sharpe.verdict == "no gap detected"


def test_a_gap_in_the_masked_arms_favour_is_no_gap_detected() -> None:
    rng = np.random.default_rng(3)
    unmasked = list(rng.normal(0.0, 0.01, 6))
    result = memorisation_gap(*arms(unmasked, [u + 0.05 for u in unmasked]))
    assert result.total_return.ci_high is not None and result.total_return.ci_high < 0
    assert result.verdict == "no gap detected"


def test_one_pair_gives_too_few_runs() -> None:
    result = memorisation_gap(*arms([0.08], [0.01]))
    gap = result.total_return
    assert gap.n_pairs == 1 and gap.difference == pytest.approx(0.07)
    assert (gap.ci_low, gap.ci_high, gap.p_value) == (None, None, None)
    assert result.verdict == "too few runs"
    assert result.text() == "+7.0% too few runs (lower bound)"


def test_incomplete_arms_compare_unpaired_by_welch() -> None:
    unmasked = [ArmRun(0, 0.10, 1.0), ArmRun(1, 0.12, 1.2), ArmRun(2, 0.11, 1.1)]
    masked = [ArmRun(0, 0.01, 0.1), ArmRun(2, 0.02, 0.2)]  # seed 1 did not complete
    gap = memorisation_gap(unmasked, masked).total_return
    welch = stats.ttest_ind([0.10, 0.12, 0.11], [0.01, 0.02], equal_var=False)
    assert not gap.paired and gap.n_pairs == 0 and (gap.n_unmasked, gap.n_masked) == (3, 2)
    assert gap.difference == pytest.approx(0.11 - 0.015)
    assert gap.p_value == pytest.approx(welch.pvalue)
    ci = welch.confidence_interval(0.95)
    assert (gap.ci_low, gap.ci_high) == pytest.approx((ci.low, ci.high))
    assert gap.verdict == "memorisation suspected"


def test_a_run_without_a_sharpe_ratio_leaves_the_sharpe_gap_unpaired() -> None:
    unmasked = [ArmRun(0, 0.0, None), ArmRun(1, 0.01, 0.5)]
    masked = [ArmRun(0, 0.0, None), ArmRun(1, 0.01, 0.5)]
    result = memorisation_gap(unmasked, masked)
    assert result.total_return.verdict == "no gap detected"
    assert result.sharpe.paired and result.sharpe.n_pairs == 1
    assert result.sharpe.verdict == "too few runs"


PERIOD = {"start": "2025-06-10", "end": "2025-06-24"}
TICKERS = ["AAPL", "MSFT", "NVDA"]


def counts(lab: Lab) -> tuple[int, int]:
    with lab.store.session() as session:
        return (
            session.scalar(select(func.count()).select_from(TradingRun)) or 0,
            session.scalar(select(func.count()).select_from(ExperimentRow)) or 0,
        )


def test_a_baselines_gap_on_the_chat_path_is_exactly_zero_and_no_gap_detected(lab: Lab) -> None:
    """A baseline decides on the real context, so masking changes nothing it does: each
    masked repeat must equal its unmasked partner of the same seed, a gap of exactly 0."""
    model = lab.models.create("rand", ai_model_id="baseline/random", tickers=TICKERS)
    found = lab.memorisation_gap(model, repeats=2, seed=1, name="rand gap", **PERIOD)
    assert isinstance(found, MemorisationGap)
    assert found.wait(timeout=300) == "completed"
    unmasked, masked = found.unmasked, found.masked
    assert (unmasked.info.options["masked"], masked.info.options["masked"]) == (False, True)
    assert unmasked.info.options["gap"] == masked.info.options["gap"] == found.id
    assert found.id == unmasked.id and unmasked.info.name == masked.info.name == "rand gap"
    for arm in (unmasked, masked):
        assert [run.info.snapshot.seed for run in arm.runs] == [1, 2]
        assert {(run.info.start, run.info.end) for run in arm.runs} == {
            (unmasked.runs[0].info.start, unmasked.runs[0].info.end)
        }
    assert [r.info.snapshot.masked for r in masked.runs] == [True, True]
    assert [r.info.snapshot.masked for r in unmasked.runs] == [False, False]
    returns = [run.info.final_return for run in unmasked.runs]
    assert returns == [run.info.final_return for run in masked.runs]
    assert len(set(returns)) == 2  # the seeds differ, so a wrong pairing would show a gap
    result = lab.memorisation_gap_result(found.id)
    for gap_of in (result.total_return, result.sharpe):
        assert gap_of.paired and gap_of.n_pairs == 2, (returns, gap_of)
        assert gap_of.difference == 0.0 and (gap_of.ci_low, gap_of.ci_high) == (0.0, 0.0)
        assert gap_of.verdict == "no gap detected"
    assert result.text() == "+0.0% [0.0, 0.0] no gap (lower bound)"
    assert [g.id for g in lab.gaps()] == [found.id]
    assert lab.gap(found.id).result() == result

    hold = lab.models.create("hold", ai_model_id="baseline/buy_and_hold", tickers=TICKERS)
    lab.start_run(hold, path="direct", background=False, **PERIOD)
    board = lab.leaderboard()
    assert list(board["masked"]) == [False, False, True]  # masked rows rank apart, after
    rows = board.set_index(["model", "masked"])
    assert rows.loc[("rand", True), "memorisation_gap"] == result.text()
    assert rows.loc[("rand", False), "memorisation_gap"] == result.text()
    assert pd.isna(rows.loc[("hold", False), "memorisation_gap"])
    assert rows.loc[("rand", True), "runs"] == 2 and rows.loc[("rand", False), "runs"] == 2
    assert rows.loc[("rand", True), "trials"] == 1 and rows.loc[("hold", False), "trials"] == 2
    together = lab.leaderboard(masked_apart=False).set_index(["model", "masked"])
    assert set(together["trials"]) == {3}  # one family: ranked, corrected and deflated together


def test_a_gap_refused_writes_nothing(lab: Lab) -> None:
    model = lab.models.create("rand", ai_model_id="baseline/random", tickers=TICKERS)
    before = counts(lab)
    with pytest.raises(ValidationError, match="masked run needs the chat path"):
        lab.memorisation_gap(model, repeats=2, path="direct", **PERIOD)  # the masked arm
    with pytest.raises(ValidationError, match="runs both arms"):
        lab.memorisation_gap(model, repeats=2, masked=True, **PERIOD)
    with pytest.raises(ValidationError, match="repeats must be a whole number"):
        lab.memorisation_gap(model, repeats=0, **PERIOD)
    assert counts(lab) == before


def test_an_experiment_that_is_no_gap_is_not_found_as_one(lab: Lab) -> None:
    model = lab.models.create("rand", ai_model_id="baseline/random", tickers=TICKERS)
    experiment = lab.start_run(model, path="direct", repeats=2, background=False, **PERIOD)
    with pytest.raises(NotFoundError, match=f"no memorisation gap {experiment.id}"):
        lab.gap(experiment.id)
    with pytest.raises(NotFoundError):
        lab.gap(9999)
    assert lab.gaps() == []


def test_a_batch_gap_entry_is_one_set_of_both_arms_and_masked_is_a_run_key() -> None:
    from ttg_lab.batch.experiment import ExperimentError, parse_experiment

    doc = {
        "name": "gap",
        "base": {"ai_model_id": "baseline/random", "path": "chat", "repeats": 2},
        "runs": [{"memorisation_gap": True}, {"masked": True}, {}],
    }
    gap, masked, plain = parse_experiment(doc).runs
    assert gap.runs == 4 and "memorisation gap (unmasked and masked)" in gap.label
    assert masked.runs == 2 and masked.label.endswith(" masked")
    assert plain.parameters["masked"] is False and plain.parameters["memorisation_gap"] is False
    with pytest.raises(ExperimentError, match="run 1: a masked run needs the chat path"):
        parse_experiment({**doc, "base": {"path": "direct"}, "runs": [{"memorisation_gap": True}]})
    with pytest.raises(ExperimentError, match="runs both arms"):
        parse_experiment({**doc, "runs": [{"memorisation_gap": True, "masked": True}]})
    with pytest.raises(ExperimentError, match="masked must be bool"):
        parse_experiment({**doc, "runs": [{"masked": "yes"}]})


@pytest.mark.slow
def test_a_batch_gap_entry_runs_both_arms_through_the_template_and_names_the_gap(
    lab: Lab, db_url: str, tmp_path: Path
) -> None:
    """One parameter set of an experiment file, executed by papermill: both arms of two
    repeats, one gap whose result is readable afterwards and named in the outputs; the
    batch run again after a failure resumes that gap's unfinished run, and no other."""
    from ttg_lab.batch.executors import LocalExecutor
    from ttg_lab.batch.experiment import parse_experiment
    from ttg_lab.batch.runner import BatchRunner

    spec = parse_experiment(
        {
            "name": "gaps",
            "base": {"model": "rand", "ai_model_id": "baseline/random", "path": "chat", **PERIOD},
            "runs": [{"memorisation_gap": True, "seed": 1}],
            "repeats": 2,
        }
    )
    runner = BatchRunner(spec, db_url, tmp_path / "reports", LocalExecutor())
    summary = runner.run()
    assert len(summary.done) == 1, summary.failed
    (found,) = lab.gaps()
    assert found.status == "completed" and found.unmasked.info.name == f"gaps/{spec.runs[0].key}"
    result = summary.done[0]["result"]
    assert result["gap_id"] == found.id and result["gap_verdict"] == "no gap detected"
    assert result["memorisation_gap"] == found.result().text()
    assert result["run_ids"] == [r.id for arm in found.arms for r in arm.runs]
    assert len(result["run_ids"]) == 4
    row = summary.frame().iloc[0]
    assert (row["gap_id"], row["memorisation_gap"]) == (found.id, found.result().text())
    assert "memorisation_gap" in (summary.folder / "summary.csv").read_text()
    assert summary.report is not None and summary.report.name == "summary.html"

    broken = found.masked.runs[1].id  # its execution failed: the batch runs the set again
    with lab.store.session() as session:
        session.execute(
            update(TradingRun)
            .where(TradingRun.id == broken)
            .values(status="failed", worker=None, heartbeat_at=None)
        )
    state = json.loads(runner.state_path.read_text())
    state[spec.runs[0].key]["status"] = "failed"
    runner.state_path.write_text(json.dumps(state))
    again = runner.run()
    assert len(again.done) == 1, again.failed
    assert [g.id for g in lab.gaps()] == [found.id] and lab.gap(found.id).status == "completed"
    with lab.store.session() as session:
        attempts = dict(session.execute(select(TradingRun.id, TradingRun.attempt)).all())
    assert attempts == {i: 1 if i == broken else 0 for i in result["run_ids"]}


class RecordingExecutor:
    """Records the jobs it is given and runs nothing: the budget's split is what is read."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []

    def run(self, fn: object, jobs: list[dict[str, Any]], concurrency: int) -> Iterator[Any]:
        for job in jobs:
            self.jobs.append(job)
            yield {"key": job["key"], "parameters": job["parameters"], "status": "done"}


def test_a_batch_budget_gives_every_run_of_a_gap_the_same_share_as_any_other_run(
    db_url: str, tmp_path: Path
) -> None:
    """Under a batch budget each run of a wave gets an equal share: a gap of 2 repeats is
    4 runs, so next to a single run it gets 4 of 5 shares, and its two arms the same cap."""
    from ttg_lab.batch.experiment import parse_experiment
    from ttg_lab.batch.runner import BatchRunner

    doc = {
        "name": "gap-budget",
        "concurrency": 2,
        "base": {"ai_model_id": "baseline/random", "path": "chat", **PERIOD},
        "runs": [{"memorisation_gap": True, "repeats": 2}, {"seed": 5}],
        "budget": {"max_cost_usd": 1.0, "max_tokens": 10_000},
    }
    executor = RecordingExecutor()
    BatchRunner(parse_experiment(doc), db_url, tmp_path, executor).run()  # type: ignore[arg-type]
    gap, single = (job["parameters"] for job in executor.jobs)
    assert gap["memorisation_gap"] and gap["repeats"] == 2
    for parameters in (gap, single):  # the template gives each of its runs these caps
        assert parameters["max_cost_usd"] == pytest.approx(1.0 / 5)
        assert parameters["max_tokens"] == 10_000 // 5

    alone = {**doc, "concurrency": 1, "runs": [{"memorisation_gap": True, "repeats": 2}]}
    alone["base"] = {**doc["base"], "max_tokens": 1_000}  # a run's own cap, when lower, wins
    executor = RecordingExecutor()
    BatchRunner(parse_experiment(alone), db_url, tmp_path, executor).run()  # type: ignore[arg-type]
    (only,) = (job["parameters"] for job in executor.jobs)
    assert only["max_cost_usd"] == pytest.approx(1.0 / 4) and only["max_tokens"] == 1_000


GAP_PERIOD = ["--start", PERIOD["start"], "--end", PERIOD["end"]]


@pytest.mark.slow
def test_the_gap_command_runs_shows_and_lists_a_gap(db_url: str) -> None:
    """``ttg-lab gap MODEL`` (options before or after MODEL) runs both arms and prints the
    gap, exit 0; ``gap show ID`` prints it again and ``gap list`` lists it."""
    from test_cli import ttg

    lab = ttg_lab.open(db_url)
    try:
        lab.models.create("rand", ai_model_id="baseline/random", tickers=TICKERS)
        out = ttg(db_url, "gap", "--repeats", "2", "rand", "--seed", "1", *GAP_PERIOD).stdout
        (found,) = lab.gaps()
        unmasked, masked = found.arms
        assert (
            f"memorisation gap {found.id}: rand x2 unmasked (experiment {unmasked.id}) and "
            f"masked (experiment {masked.id}), daily, 2025-06-10 .. 2025-06-24, seeds 1..2"
        ) in out
        for label, arm in (("unmasked", unmasked), ("masked", masked)):
            for run in arm.runs:
                assert f"{label} run {run.id}: completed" in out
        text = found.result().text()
        verdict = f"verdict: no gap detected - {text}"
        assert verdict in out and f"note: {LOWER_BOUND}" in out.replace("\n", " ")
        assert f"memorisation gap {found.id} (unmasked - masked, 95% interval)" in out

        shown = ttg(db_url, "gap", "show", str(found.id)).stdout
        assert verdict in shown and "2 pairs" in shown and "total_return" in shown
        listed = ttg(db_url, "gap", "list").stdout
        (row,) = [line for line in listed.splitlines() if " rand " in line]
        assert f" {found.id} " in row and "completed" in row and text in row
    finally:
        lab.close()


@pytest.mark.slow
def test_the_gap_command_refuses_bad_input_in_one_line_and_writes_nothing(db_url: str) -> None:
    """Each refusal is one ``error:`` line (a usage error: click's line naming the option)
    with an exit code other than 0, and no run or experiment is written; a gap whose runs
    fail exits 1."""
    from test_cli import ttg

    lab = ttg_lab.open(db_url)
    try:
        model = lab.models.create("rand", ai_model_id="baseline/random", tickers=TICKERS)
        lab.models.create(
            "unreachable",
            ai_model_id="openai/gpt-5",
            parameters={"base_url": "http://127.0.0.1:9/v1", "api_key_env": "TTG_DEAD_KEY"}
            | {"max_retries": 0, "retry_delay": 0, "timeout": 1},
        )
        found = lab.memorisation_gap(model, repeats=1, background=False, **PERIOD)
        plain = lab.start_run(model, path="direct", repeats=2, background=False, **PERIOD)
        lab.users.sign_up("bob@elsewhere.org", "Bob")
        lab.users.approve("bob")
        bob = {"TTG_LAB_USER": "bob"}
        before = counts(lab)
        refusals: list[tuple[list[str], dict[str, str], str]] = [
            (["gap", "nobody", *GAP_PERIOD], {}, "error: no model 'nobody'"),
            (["gap", "run", "nobody"], {}, "error: no model 'nobody'"),
            (["gap", "rand", "--repeats", "0"], {}, "error: repeats must be a whole number"),
            (["gap", "rand", "--repeats", "101"], {}, "from 1 to 100, got 101"),
            (["gap", "rand", "--start", "2025-06-24", "--end", "2025-06-10"], {}, "before"),
            (["gap", "show", "9999"], {}, "error: no memorisation gap 9999"),
            (["gap", "show", str(plain.id)], {}, f"experiment {plain.id} is not one"),
            (["gap", "show", str(found.masked.id)], {}, f"is the masked arm of gap {found.id}"),
            (["gap", "show", str(found.id)], bob, f"error: no memorisation gap {found.id}"),
            (["gap", "rand", "--repeats", "1"], bob, "error: no model 'rand'"),
        ]
        for args, env, message in refusals:
            refused = ttg(db_url, *args, check=False, env=env)
            assert refused.returncode == 1 and message in refused.stdout, (args, refused)
            assert len(refused.stdout.strip().splitlines()) == 1, refused.stdout
            assert "Traceback" not in refused.stdout + refused.stderr
        for option in ("--masked", "--path"):  # a gap runs both arms, on the chat path
            refused = ttg(db_url, "gap", "rand", option, check=False)
            assert refused.returncode == 2 and f"No such option '{option}'" in refused.stderr
        assert "no memorisation gaps" in ttg(db_url, "gap", "list", env=bob).stdout
        assert counts(lab) == before

        keyed = {"TTG_DEAD_KEY": "sk-dead-0000"}
        failed = ttg(db_url, "gap", "unreachable", "--repeats", "1", check=False, env=keyed)
        assert failed.returncode == 1 and "masked run" in failed.stdout, failed.stdout
        assert "failed" in failed.stdout and "too few runs" in failed.stdout
        assert "sk-dead-0000" not in failed.stdout + failed.stderr
    finally:
        lab.close()


LONG_PERIOD = ["--start", "2025-06-10", "--end", "2025-07-31"]
"""Long enough for a stop to come while the runs trade."""


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_the_gap_command_stops_every_run_of_both_arms(
    lab: Lab, db_url: str, openai_stub: OpenAIStubServer, stop: signal.Signals
) -> None:
    from support.openai_server import Quirks
    from test_cli import TTG_LAB
    from test_llm_quirks import make_model, native_trader

    openai_stub.reset(native_trader(), Quirks(answer_delay=0.3))
    model = make_model(lab, openai_stub, "openai-compatible/any", tool_mode="native")
    process = subprocess.Popen(
        [str(TTG_LAB), "gap", model.name, "--repeats", "1", *LONG_PERIOD],
        env={**os.environ, "TTG_LAB_DB_URL": db_url, "COLUMNS": "200"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while len(runs := lab.runs(model.name)) < 2 or any(r.info.steps_done < 1 for r in runs):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.2)
        process.send_signal(stop)
        assert process.wait(timeout=60) == 1  # not every run completed
        (found,) = lab.gaps()
        for arm in found.arms:
            (run,) = arm.runs
            assert run.status == "stopped" and run.info.steps_done < run.info.steps_total
    finally:
        process.kill()
        process.wait()
