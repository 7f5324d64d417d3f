"""Budgets in batch files: per-run caps as run parameters (the template takes them) and a
batch-wide cap on the total, checked before each run starts, against our OpenAI-compatible
server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.openai_server import OpenAIStubServer
from test_batch import run_batch
from test_budget import END, PRICED, START
from test_llm_quirks import native_trader

from ttg_lab.batch.executors import Job, LocalExecutor, Result
from ttg_lab.batch.experiment import ExperimentError, parse_experiment
from ttg_lab.batch.runner import BatchRunner
from ttg_lab.engine.budget import run_spend
from ttg_lab.lab import Lab


def llm_base(server: OpenAIStubServer) -> dict[str, Any]:
    """A priced LLM on the stub server, on the chat path, as a batch's base."""
    parameters = {"base_url": server.base_url, "max_retries": 0, "timeout": 5.0}
    parameters |= {"retry_delay": 0.01, "tool_mode": "native", **PRICED}
    return {
        "model": "budget-batch",
        "ai_model_id": "openai-compatible/any",
        "path": "chat",
        "costs": "zero",
        "start": START,
        "end": END,
        "parameters_json": json.dumps(parameters),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"base": {"max_cost_usd": -1}},
            r"max_cost_usd must be a positive .*-1.0 \(or 0: no cap\)",
        ),
        ({"base": {"max_tokens": 1.5}}, "max_tokens must be int, got 1.5"),
        ({"budget": {"max_cost_usd": 0}}, "budget: max_cost_usd must be a positive .* got 0"),
        ({"budget": {"max_dollars": 3}}, "budget must be a mapping of max_cost_usd and/or"),
        ({"budget": 5}, "budget must be a mapping"),
    ],
)
def test_bad_budgets_are_refused_naming_the_value(change: dict[str, Any], message: str) -> None:
    doc = {"name": "bad", "grid": {"ai_model_id": ["baseline/momentum"]}, **change}
    with pytest.raises(ExperimentError, match=message):
        parse_experiment(doc)


@pytest.mark.slow
def test_a_batch_budget_caps_the_total_and_a_run_gets_what_remains(
    lab: Lab, db_url: str, tmp_path: Path, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(native_trader())
    base = llm_base(openai_stub)
    model = lab.models.create(
        base["model"],
        ai_model_id=base["ai_model_id"],
        parameters=json.loads(base["parameters_json"]),
    )
    alone = lab.start_run(model, start=START, end=END, costs="zero", background=False)
    assert alone.status == "completed", alone.info.error
    cost = run_spend(lab.store, alone.id).cost

    cap = 1.5 * cost
    doc = {"name": "capped", "concurrency": 1, "base": base, "grid": {"seed": [0, 1]}}
    summary, _ = run_batch(
        lab, db_url, tmp_path, {**doc, "budget": {"max_cost_usd": cap}}, LocalExecutor()
    )
    first, second = summary.results
    assert first["status"] == "done", first["error"]
    assert second["status"] == "failed" and "budget" in second["error"]
    first_id, second_id = first["result"]["run_id"], second["result"]["run_id"]
    spent_first = run_spend(lab.store, first_id).cost
    # the template took the cap: the second run had what the first left of the batch's
    assert lab.run(second_id).info.snapshot.budget.max_cost_usd == pytest.approx(cap - spent_first)
    assert lab.run(second_id).status == "stopped"
    assert spent_first + run_spend(lab.store, second_id).cost <= cap

    # a per-run cap given as a parameter reaches the run (no batch budget)
    doc = {"name": "per-run", "base": {**base, "max_cost_usd": cost / 2}, "grid": {"seed": [2]}}
    summary, _ = run_batch(lab, db_url, tmp_path, doc, LocalExecutor())
    (only,) = summary.results
    run = lab.run(only["result"]["run_id"])
    assert run.status == "stopped" and run.info.snapshot.budget.max_cost_usd == cost / 2


class FakeExecutor:
    """Runs each job as a real run in this process (no notebook), recording the jobs."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.jobs: list[Job] = []

    def run(
        self, fn: Callable[[Job], Result], jobs: list[Job], concurrency: int
    ) -> Iterator[Result]:
        for job in jobs:
            self.jobs.append(job)
            p = job["parameters"]
            run = self.lab.start_run(
                p["model"],
                start=p["start"],
                end=p["end"],
                costs="zero",
                background=False,
                max_cost_usd=p["max_cost_usd"] or None,
                max_tokens=p["max_tokens"] or None,
            )
            status = "done" if run.status == "completed" else "failed"
            yield {
                "key": job["key"],
                "output": job["output"],
                "parameters": p,
                "status": status,
                "result": {"run_id": run.id},
                "error": run.info.error,
            }


def test_a_spent_batch_budget_starts_no_more_runs_and_a_higher_one_goes_on(
    lab: Lab, db_url: str, tmp_path: Path, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(native_trader())
    base = llm_base(openai_stub)
    lab.models.create(
        base["model"],
        ai_model_id=base["ai_model_id"],
        parameters=json.loads(base["parameters_json"]),
    )
    doc = {"name": "tokens", "concurrency": 2, "base": base, "grid": {"seed": [0, 1, 2, 3]}}
    executor = FakeExecutor(lab)
    runner = BatchRunner(
        parse_experiment({**doc, "budget": {"max_tokens": 10**7}}), db_url, tmp_path, executor
    )
    summary = runner.run()
    assert [r["status"] for r in summary.results] == ["done"] * 4
    tokens = runner.spent(runner.state()).total.tokens
    shares = [job["parameters"]["max_tokens"] for job in executor.jobs]
    assert shares[:2] == [10**7 // 2] * 2  # a wave of two shares the whole budget
    assert shares[2] == shares[3] < shares[0]  # the next wave shares what is left

    # a budget the first wave spends: the second wave is not started, and says why
    executor = FakeExecutor(lab)
    cap = tokens // 4  # about one run's tokens: two runs at once pass it together
    spec = parse_experiment({**doc, "name": "tight", "budget": {"max_tokens": cap}})
    summary = BatchRunner(spec, db_url, tmp_path, executor).run()
    statuses = [r["status"] for r in summary.results]
    assert len(executor.jobs) == 2 and statuses[2:] == ["budget", "budget"]
    assert (
        "not started" in summary.results[2]["error"]
        and f"max_tokens={cap}" in summary.results[2]["error"]
    )
    runner = BatchRunner(spec, db_url, tmp_path, executor)
    assert runner.spent(runner.state()).total.tokens <= cap


class FailingExecutor(FakeExecutor):
    """Like :class:`FakeExecutor`, but every execution reports a failure, so each run of the
    batch executes its parameter set again (as after a stop or a crash)."""

    def run(
        self, fn: Callable[[Job], Result], jobs: list[Job], concurrency: int
    ) -> Iterator[Result]:
        for result in super().run(fn, jobs, concurrency):
            yield {**result, "status": "failed"}


def test_a_batch_budget_counts_the_spend_of_every_execution_of_a_set(
    lab: Lab, db_url: str, tmp_path: Path, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(native_trader())
    base = llm_base(openai_stub)
    lab.models.create(
        base["model"],
        ai_model_id=base["ai_model_id"],
        parameters=json.loads(base["parameters_json"]),
    )
    doc = {"name": "again", "base": base, "runs": [{}], "budget": {"max_tokens": 10**7}}
    runner = BatchRunner(parse_experiment(doc), db_url, tmp_path, FailingExecutor(lab))
    first = runner.run().results[0]["result"]["run_id"]
    second = runner.run().results[0]["result"]["run_id"]
    assert first != second
    both = run_spend(lab.store, first).tokens + run_spend(lab.store, second).tokens
    assert runner.spent(runner.state()).total.tokens == both > 0
