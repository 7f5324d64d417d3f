"""Budgets: a run's LLM caps (max_cost_usd, max_tokens) checked before every model call
against our OpenAI-compatible server on 127.0.0.1, through the real path (langchain-openai,
the agent, MCP tools, gate, ledger, store)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select
from support.openai_server import OpenAIStubServer, Quirks
from test_llm_quirks import make_model, native_trader

from ttg_lab.errors import ValidationError
from ttg_lab.lab import Lab
from ttg_lab.store.schema import LedgerEntry, LLMCall, TradingRun

START, END = "2025-07-01", "2025-07-03"  # three trading days
PRICED = {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0, "max_tokens": 20}
"""USD 0.001 a token, an answer budget of 20 tokens."""
KEY = ["ts", "step_index", "symbol", "action", "quantity", "status", "fill_price", "fees"]


def priced_model(lab: Lab, server: OpenAIStubServer, **params: Any) -> Any:
    return make_model(
        lab, server, "openai-compatible/any", tool_mode="native", **{**PRICED, **params}
    )


def spend(lab: Lab, run_id: int) -> tuple[float, int, int]:
    """Cost, tokens and calls of every recorded call of the run (wasted ones too)."""
    with lab.store.session() as session:
        cost, tokens, calls = session.execute(
            select(
                func.coalesce(func.sum(LLMCall.cost), 0.0),
                func.coalesce(func.sum(LLMCall.prompt_tokens + LLMCall.completion_tokens), 0),
                func.count(LLMCall.id),
            ).where(LLMCall.run_id == run_id)
        ).one()
    return float(cost), int(tokens), int(calls)


def ledger_key(run: Any) -> pd.DataFrame:
    return run.ledger()[KEY].reset_index(drop=True)


def test_a_run_stops_at_its_cost_cap_and_resumes_to_an_uncapped_runs_ledger(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(native_trader())
    model = priced_model(lab, openai_stub)
    free = lab.start_run(model, start=START, end=END, costs="zero", background=False)
    assert free.status == "completed", free.info.error
    total, _, _ = spend(lab, free.id)
    per_step = total / 3

    cap = 1.5 * per_step
    served = len(openai_stub.requests)
    run = lab.start_run(
        model, start=START, end=END, costs="zero", max_cost_usd=cap, background=False
    )
    info = run.info
    assert info.status == "stopped"
    assert info.snapshot.budget.max_cost_usd == pytest.approx(cap)
    assert "budget" in (info.error or "") and f"max_cost_usd=${cap:g}" in (info.error or "")
    assert info.steps_done == 1  # stopped at the last committed step
    cost, _, calls = spend(lab, run.id)
    assert cost <= cap  # every call made stayed within the cap, wasted ones included
    assert f"${cost:.6f}" in (info.error or "")  # the error names the spend
    assert len(openai_stub.requests) - served == calls  # the refused call was never sent
    assert info.wasted_llm_calls > 0  # the step in flight was not committed
    with lab.store.session() as session:  # nothing of the step in flight was written
        steps = session.scalars(
            select(LedgerEntry.step_index).where(LedgerEntry.run_id == run.id)
        ).all()
    assert set(steps) == {0}

    run.resume(max_cost_usd=10 * total, background=False)
    assert run.status == "completed", run.info.error
    assert run.info.snapshot.budget.max_cost_usd == pytest.approx(10 * total)
    pd.testing.assert_frame_equal(ledger_key(run), ledger_key(free))


def test_a_budget_stopped_run_resumed_without_a_higher_cap_stops_again(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(native_trader())
    model = priced_model(lab, openai_stub)
    run = lab.start_run(
        model, start=START, end=END, costs="zero", max_tokens=1000, background=False
    )
    assert run.status == "stopped" and "max_tokens=1000" in (run.info.error or "")
    done = run.info.steps_done
    assert spend(lab, run.id)[1] <= 1000
    run.resume(background=False)
    assert run.status == "stopped" and run.info.steps_done == done


def test_a_local_model_never_hits_a_cost_cap_but_hits_a_token_cap(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(native_trader())
    model = make_model(lab, openai_stub, "local/smollm2", tool_mode="native", max_tokens=20)
    free = lab.start_run(
        model, start=START, end=END, costs="zero", max_cost_usd=1e-9, background=False
    )
    assert free.status == "completed", free.info.error
    _, tokens, _ = spend(lab, free.id)
    capped = lab.start_run(
        model, start=START, end=END, costs="zero", max_tokens=tokens // 2, background=False
    )
    assert capped.status == "stopped"
    assert f"max_tokens={tokens // 2}" in (capped.info.error or "")
    assert spend(lab, capped.id)[1] <= tokens // 2


def test_a_server_without_usage_still_counts_against_the_caps(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(native_trader(), Quirks(no_usage=True))
    model = priced_model(lab, openai_stub)
    free = lab.start_run(model, start=START, end=END, costs="zero", background=False)
    assert free.status == "completed", free.info.error
    with lab.store.session() as session:
        calls = session.scalars(select(LLMCall).where(LLMCall.run_id == free.id)).all()
        assert calls and all(c.prompt_tokens > 0 and c.completion_tokens > 0 for c in calls)
        assert all(c.request.get("token_counts") == "estimated" for c in calls)
        assert all(
            c.cost == pytest.approx((c.prompt_tokens + c.completion_tokens) * 1e-3) for c in calls
        )
    cost, tokens, _ = spend(lab, free.id)
    for cap in ({"max_tokens": tokens // 2}, {"max_cost_usd": cost / 2}):
        capped = lab.start_run(model, start=START, end=END, costs="zero", background=False, **cap)
        assert capped.status == "stopped", cap
        assert "budget" in (capped.info.error or "")
        spent_cost, spent_tokens, _ = spend(lab, capped.id)
        assert spent_tokens <= tokens // 2 if "max_tokens" in cap else spent_cost <= cost / 2


def test_the_global_default_caps_runs_that_set_none(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(native_trader())
    model = priced_model(lab, openai_stub)
    lab.settings.set("llm.max_cost_usd", 1e-6)
    run = lab.start_run(model, start=START, end=END, costs="zero", background=False)
    assert run.status == "stopped" and "max_cost_usd=$1e-06" in (run.info.error or "")
    assert run.info.snapshot.budget.max_cost_usd == 1e-6
    assert run.info.steps_done == 0 and spend(lab, run.id)[2] == 0  # nothing was spent
    own = lab.start_run(
        model, start=START, end=END, costs="zero", max_cost_usd=100.0, background=False
    )
    assert own.status == "completed", own.info.error  # a run's own cap wins


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_cost_usd", -1),
        ("max_cost_usd", 0),
        ("max_cost_usd", "lots"),
        ("max_cost_usd", float("nan")),
        ("max_cost_usd", True),
        ("max_tokens", 0),
        ("max_tokens", 1.5),
        ("max_tokens", "many"),
    ],
)
def test_bad_caps_are_refused_naming_them_with_nothing_written(
    option: str, value: Any, lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    model = priced_model(lab, openai_stub)
    with pytest.raises(ValidationError, match=rf"{option}.*{value!r}"):
        lab.start_run(model, start=START, end=END, **{option: value})
    with pytest.raises(ValidationError, match=rf"llm\.{option}.*{value!r}"):
        lab.settings.set(f"llm.{option}", value)
    assert f"llm.{option}" not in lab.settings.all()
    with lab.store.session() as session:
        assert session.scalar(select(func.count(TradingRun.id))) == 0


def test_a_resume_with_a_bad_cap_changes_nothing(lab: Lab, openai_stub: OpenAIStubServer) -> None:
    openai_stub.reset(native_trader())
    model = priced_model(lab, openai_stub)
    run = lab.start_run(
        model, start=START, end=END, costs="zero", max_tokens=1000, background=False
    )
    before = run.info
    with pytest.raises(ValidationError, match=r"max_cost_usd.*-5"):
        run.resume(max_cost_usd=-5)
    after = run.info
    assert (after.status, after.steps_done, after.snapshot) == (
        before.status,
        before.steps_done,
        before.snapshot,
    )


TTG_LAB = Path(sys.executable).parent / "ttg-lab"


def test_the_cli_stops_a_run_on_its_budget_with_exit_1_and_resumes_it(
    db_url: str, lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(native_trader())
    model = priced_model(lab, openai_stub)
    env = {**os.environ, "TTG_LAB_DB_URL": db_url, "COLUMNS": "200"}

    def ttg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(TTG_LAB), *args], capture_output=True, text=True, env=env, timeout=300
        )

    stopped = ttg("run", model.name, "--start", START, "--end", END, "--max-cost-usd", "0.00001")
    assert stopped.returncode == 1
    assert "budget" in stopped.stdout + stopped.stderr
    run_id = lab.runs(model.name)[0].id
    assert lab.run(run_id).status == "stopped"
    resumed = ttg("resume", str(run_id), "--max-cost-usd", "100")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert lab.run(run_id).status == "completed"
    assert lab.run(run_id).info.snapshot.budget.max_cost_usd == 100.0


def test_a_call_that_timed_out_counts_its_prompt_and_a_refused_one_nothing(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(native_trader(), Quirks(answer_delay=5.0))
    slow = priced_model(lab, openai_stub, timeout=1.0)
    run = lab.start_run(slow, start=START, end=END, costs="zero", background=False)
    assert run.status == "failed"
    openai_stub.reset(native_trader(), Quirks(too_many=100, retry_after="0"))
    refused = lab.start_run(
        priced_model(lab, openai_stub), start=START, end=END, costs="zero", background=False
    )
    assert refused.status == "failed"
    with lab.store.session() as session:
        timed_out = session.scalars(select(LLMCall).where(LLMCall.run_id == run.id)).all()
        limited = session.scalars(select(LLMCall).where(LLMCall.run_id == refused.id)).all()
    assert timed_out and all("Timeout" in (c.error or "") for c in timed_out)
    assert all(c.prompt_tokens > 0 and c.completion_tokens == 0 for c in timed_out)
    assert all(c.request.get("token_counts") == "estimated" and c.cost > 0 for c in timed_out)
    assert limited and all(c.prompt_tokens == 0 and c.cost == 0 for c in limited)
    assert spend(lab, run.id)[1] == sum(c.prompt_tokens for c in timed_out)
