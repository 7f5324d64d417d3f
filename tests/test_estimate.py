"""Estimates: a run's LLM calls, tokens and cost predicted before anything is spent, from
its calendar, its rendered prompt, the model's price and its past runs; nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.openai_server import OpenAIStubServer, Quirks
from test_budget import END, START, priced_model
from test_llm_quirks import native_trader

from ttg_lab.errors import ValidationError
from ttg_lab.lab import Lab
from ttg_lab.runs.estimate import CALLS_PER_STEP, TOKENIZER
from ttg_lab.store.schema import LLMCall, TradingRun


def counts(lab: Lab) -> tuple[int, int]:
    with lab.store.session() as session:
        runs = session.scalar(select(func.count(TradingRun.id)))
        calls = session.scalar(select(func.count(LLMCall.id)))
    return int(runs or 0), int(calls or 0)


def test_an_estimate_predicts_from_calendar_prompt_price_and_past_runs_writing_nothing(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(native_trader(), Quirks(no_usage=True))  # recorded tokens: our count
    model = priced_model(lab, openai_stub)  # USD 0.001 a token, answers of at most 20
    before = counts(lab)
    first = lab.estimate(model, start=START, end=END, costs="zero")
    assert counts(lab) == before and not openai_stub.requests  # nothing run, sent or written
    assert first.steps == 3 and first.calls == 3 * CALLS_PER_STEP
    assert first.first_prompt_tokens > 100
    assert first.prompt_tokens == first.calls * first.first_prompt_tokens
    assert first.completion_tokens == first.calls * 20  # the answer budget
    assert first.cost_usd == pytest.approx(first.tokens * 1e-3)
    assert "no past runs" in first.calls_basis and TOKENIZER in first.tokens_basis

    run = lab.start_run(model, start=START, end=END, costs="zero", background=False)
    assert run.status == "completed", run.info.error
    assert run.info.steps_total == first.steps  # the run's own calendar
    with lab.store.session() as session:
        calls = session.scalars(
            select(LLMCall).where(LLMCall.run_id == run.id).order_by(LLMCall.id)
        ).all()
        # the first call's prompt is what the estimate rendered (the same prompt and tools)
        assert calls[0].prompt_tokens == pytest.approx(first.first_prompt_tokens, rel=0.05)
        prompt = sum(c.prompt_tokens for c in calls)
        completion = sum(c.completion_tokens for c in calls)
        n = len(calls)

    again = lab.estimate(model, start=START, end=END)
    assert "1 completed run" in again.calls_basis and "1 completed run" in again.tokens_basis
    assert again.calls == n  # same period: the calls per step of the past run
    assert again.prompt_tokens == prompt and again.completion_tokens == completion
    assert again.cost_usd == pytest.approx((prompt + completion) * 1e-3)

    sibling = priced_model(lab, openai_stub)  # another model on the same AI model
    borrowed = lab.estimate(sibling, start=START, end=END)
    assert "other openai-compatible/any models' 1 completed run" in borrowed.calls_basis
    assert borrowed.calls == n
    replay = lab.estimate(model, start=START, end=END, replay_from=run.id)
    assert (replay.calls, replay.cost_usd) == (0, 0.0) and "a replay of run" in str(replay)


def test_an_estimate_shows_the_caps_and_whether_it_exceeds_them(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    model = priced_model(lab, openai_stub)
    free = lab.estimate(model, start=START, end=END)
    assert not free.over_cost_cap and not free.over_token_cap
    assert "max_cost_usd: no cap" in str(free)
    capped = lab.estimate(model, start=START, end=END, max_cost_usd=free.cost_usd / 2)
    assert capped.over_cost_cap and not capped.over_token_cap
    assert f"max_cost_usd={free.cost_usd / 2:g}: the estimate EXCEEDS it" in str(capped)
    lab.settings.set("llm.max_tokens", free.tokens * 2)  # the global default fills the unset
    assert lab.estimate(model, start=START, end=END).budget.max_tokens == free.tokens * 2
    with pytest.raises(ValidationError, match=r"max_cost_usd must be a positive .* got -1"):
        lab.estimate(model, start=START, end=END, max_cost_usd=-1)
    with pytest.raises(ValidationError, match="end 2025-07-01 is before start 2025-07-03"):
        lab.estimate(model, start=END, end=START)


def test_an_offline_baseline_is_estimated_free_saying_why(lab: Lab) -> None:
    model = lab.models.create("est baseline", ai_model_id="baseline/momentum")
    estimate = lab.estimate(model, start=START, end=END)
    assert (estimate.steps, estimate.calls, estimate.tokens, estimate.cost_usd) == (3, 0, 0, 0.0)
    assert "offline baseline" in str(estimate) and "local" in estimate.cost_basis


def test_the_cli_estimates_a_run_and_runs_nothing(
    lab: Lab, db_url: str, openai_stub: OpenAIStubServer
) -> None:
    model = priced_model(lab, openai_stub)
    before = counts(lab)
    cli = Path(sys.executable).parent / "ttg-lab"
    args = ["run", model.name, "--start", START, "--end", END, "--estimate", "--max-tokens", "100"]
    done = subprocess.run(
        [str(cli), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TTG_LAB_DB_URL": db_url},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "3 decision steps" in done.stdout and "LLM calls: 6" in done.stdout
    assert "max_tokens=100: the estimate EXCEEDS it" in done.stdout
    assert "nothing was run or written" in done.stdout
    assert counts(lab) == before and not openai_stub.requests
