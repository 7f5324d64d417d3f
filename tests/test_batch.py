"""Batch experiments: papermill executions of the template through the local pool and a
Dask LocalCluster, isolated failures, resume, reruns, and bad files refused up front."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ttg_lab.batch.executors import DaskExecutor, LocalExecutor
from ttg_lab.batch.experiment import ExperimentError, load_experiment, parse_experiment
from ttg_lab.batch.rerun import rerun
from ttg_lab.batch.runner import BatchRunner
from ttg_lab.lab import Lab

BASELINES = [
    "baseline/buy_and_hold",
    "baseline/momentum",
    "baseline/mean_reversion",
    "baseline/random",
]
PERIODS = [
    {"start": "2025-06-10", "end": "2025-07-31"},
    {"start": "2025-08-01", "end": "2025-09-15"},
    {"start": "2025-09-16", "end": "2025-10-30"},
]


def experiment(name: str, broken: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "concurrency": 2,
        "base": {"mode": "daily", "costs": "default", "path": "direct"},
        "grid": {"ai_model_id": BASELINES, "period": PERIODS},
    }
    if broken:  # valid on paper, but there is no data in 2024: this one run fails alone
        doc["runs"] = [{"model": "broken", "start": "2024-01-02", "end": "2024-01-31"}]
    return doc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "unknown key"),
        ({"base": {"mode": "daily", "leverage": 3}}, "unknown parameter"),
        ({"grid": {"ai_model_id": ["baseline/nope"]}}, "unknown baseline"),
        ({"grid": {"ai_model_id": ["openai/gpt-99"]}}, "not in the catalog"),
        ({"grid": {"period": [{"start": "2025-09-01", "end": "2025-08-01"}]}}, "is before start"),
        ({"grid": {}}, "the grid is empty"),
        ({"grid": {"seed": []}}, "non-empty list"),
        ({"base": {"seed": "one"}}, "seed must be int"),
        ({"base": {"rules_preset": "yolo"}}, "unknown rules preset"),
    ],
)
def test_bad_experiment_files_are_refused_before_anything_runs(
    change: dict[str, Any], message: str
) -> None:
    doc = {"name": "bad", "grid": {"ai_model_id": ["baseline/momentum"]}, **change}
    with pytest.raises(ExperimentError, match=message):
        parse_experiment(doc)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(ExperimentError, match="cannot read the experiment"):
        load_experiment(path)


def run_batch(lab: Lab, db_url: str, tmp_path: Path, doc: dict[str, Any], executor: Any) -> Any:
    path = tmp_path / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    spec = load_experiment(path)
    return BatchRunner(spec, db_url, tmp_path / "reports", executor).run(), spec


@pytest.mark.slow
def test_a_batch_on_the_local_pool_isolates_failures_resumes_and_reruns(
    lab: Lab, db_url: str, tmp_path: Path
) -> None:
    summary, spec = run_batch(lab, db_url, tmp_path, experiment("grid-local"), LocalExecutor())
    assert len(spec.runs) == 13
    assert len(summary.done) == 12 and len(summary.failed) == 1
    failed = summary.failed[0]
    assert failed["parameters"]["model"] == "broken" and "no 1d bars" in failed["error"]
    runs = lab.runs().table()
    assert len(runs[runs["status"] == "completed"]) == 12
    for result in summary.done:
        assert Path(result["output"]).exists()
    assert summary.report is not None and summary.report.name == "summary.html"
    assert "<script" in summary.report.read_text()

    # the same experiment again: the 12 finished runs are skipped, the broken one retried
    again, _ = run_batch(lab, db_url, tmp_path, experiment("grid-local"), LocalExecutor())
    assert again.skipped == 12 and len(again.failed) == 1 and len(lab.runs()) == 12

    # a finished run re-executed from its recorded parameters gives the same ledger
    some = summary.done[3]["result"]["run_id"]
    snapshot = lab.run(some).info.snapshot.to_json()
    assert snapshot["experiment"]["experiment"] == "grid-local"
    assert snapshot["experiment"]["parameters"]["ai_model_id"] in BASELINES
    for key in ("prompt_version", "data_fingerprint", "package_version", "seed"):
        assert key in snapshot
    outcome = rerun(lab, some)
    assert outcome["identical"] and outcome["run_id"] != some


@pytest.mark.slow
def test_the_same_batch_on_a_dask_cluster(lab: Lab, db_url: str, tmp_path: Path) -> None:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        summary, _ = run_batch(
            lab, db_url, tmp_path, experiment("grid-dask"), DaskExecutor(cluster.scheduler_address)
        )
    assert len(summary.done) == 12 and len(summary.failed) == 1
    assert summary.report is not None and summary.report.exists()


def test_a_batch_keeps_its_parameter_set_keys_when_the_template_gains_parameters() -> None:
    # the keys this file had before the template gained max_cost_usd, max_tokens and repeats
    # (computed by the release before them): run again, such a batch skips what finished
    doc = {
        "name": "sweep",
        "base": {"mode": "daily", "path": "direct"},
        "grid": {"ai_model_id": ["baseline/momentum", "baseline/random"], "seed": [0, 1]},
        "runs": [{"ai_model_id": "baseline/random", "seed": 7, "start": "2025-06-10"}],
    }
    before = ["91860fddd579", "c79e097ccd14", "b3dbae57e9d0", "83c83bd3b53f", "65f69d4c6d28"]
    assert [spec.key for spec in parse_experiment(doc).runs] == before
    capped = parse_experiment({**doc, "base": {**doc["base"], "max_tokens": 1000}})
    assert not {spec.key for spec in capped.runs} & set(before)  # a new value is a new set
