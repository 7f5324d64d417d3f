"""Repeats in batch files: ``repeats:`` (top level or per parameter set) makes one
execution start that many runs as one experiment; a resumed batch resumes the repeats that
did not complete and runs none that did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from ttg_lab.batch.executors import LocalExecutor
from ttg_lab.batch.experiment import ExperimentError, parse_experiment
from ttg_lab.batch.rerun import rerun
from ttg_lab.batch.runner import BatchRunner
from ttg_lab.lab import Lab
from ttg_lab.store.schema import TradingRun

PERIOD = {"start": "2025-06-10", "end": "2025-06-20"}


def doc(**extra: Any) -> dict[str, Any]:
    return {
        "name": "reps",
        "base": {"path": "direct", **PERIOD},
        "grid": {"ai_model_id": ["baseline/random", "baseline/momentum"]},
        **extra,
    }


def test_top_level_repeats_apply_to_every_parameter_set_unless_it_says_otherwise() -> None:
    plain = parse_experiment(doc())
    assert [spec.parameters["repeats"] for spec in plain.runs] == [1, 1]
    repeated = parse_experiment(
        doc(repeats=3, runs=[{"model": "once", "ai_model_id": "baseline/cash", "repeats": 1}])
    )
    assert [spec.parameters["repeats"] for spec in repeated.runs] == [3, 3, 1]
    assert repeated.runs[0].label.endswith("seed 0 x3")


@pytest.mark.parametrize(
    ("repeats", "message"),
    [
        (0, "repeats must be a whole number from 1 to 100, got 0"),
        (101, "got 101"),
        ("3", "repeats must be int, got '3'"),
    ],
)
def test_bad_repeats_in_a_batch_file_are_refused_naming_the_value(
    repeats: object, message: str
) -> None:
    with pytest.raises(ExperimentError, match=message):
        parse_experiment(doc(repeats=repeats))


def attempts(lab: Lab) -> dict[int, tuple[str, int]]:
    with lab.store.session() as session:
        rows = session.execute(select(TradingRun.id, TradingRun.status, TradingRun.attempt))
        return {run_id: (status, attempt) for run_id, status, attempt in rows}


@pytest.mark.slow
def test_a_batch_with_repeats_groups_them_and_resumes_only_unfinished_repeats(
    lab: Lab, db_url: str, tmp_path: Path
) -> None:
    spec = parse_experiment(
        {"name": "reps", "base": {"path": "direct", "ai_model_id": "baseline/random", **PERIOD}}
        | {"runs": [{"seed": 4}], "repeats": 3}
    )
    runner = BatchRunner(spec, db_url, tmp_path / "reports", LocalExecutor())
    summary = runner.run()
    assert len(summary.done) == 1, summary.failed
    (experiment,) = lab.experiments()
    assert experiment.info.name == f"reps/{spec.runs[0].key}" and experiment.status == "completed"
    assert [run.info.snapshot.seed for run in experiment.runs] == [4, 5, 6]
    result = summary.done[0]["result"]
    assert result["run_ids"] == [run.id for run in experiment.runs]
    assert result["experiment_id"] == experiment.id
    assert lab.leaderboard().set_index("model").iloc[0]["repeats"] == 3

    # the second repeat fails and the execution is recorded failed: the batch run again
    # resumes that repeat alone, in the same experiment
    broken = experiment.runs[1].id
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
    assert len(again.done) == 1 and len(lab.experiments()) == 1
    assert attempts(lab) == {
        run.id: ("completed", 1 if run.id == broken else 0) for run in experiment.runs
    }
    assert runner.run().skipped == 1 and len(attempts(lab)) == 3

    # one repeat re-executed from its recorded parameters: alone, with its own seed
    outcome = rerun(lab, experiment.runs[2].id)
    assert outcome["identical"]
    redone = lab.run(outcome["run_id"]).info
    assert redone.snapshot.seed == 6 and len(attempts(lab)) == 4
    assert len(lab.experiments()) == 1
