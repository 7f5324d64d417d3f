"""Which recorded LLM calls a run used, and which it wasted.

A step's calls are those of the attempt that committed it (``run_steps.attempt``): they
are the run's cost and what a replay reads. Calls of any other attempt (a step lost in a
crash, a failure or a takeover, then done again) were paid for but are not the run's:
they are counted apart as wasted, so the run's cost stays exact and the total spend
(used + wasted) stays visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from ttg_lab.store.schema import LLMCall, RunStep


def served_step() -> ColumnElement[bool]:
    """Join condition from a call to the step it served: same run, step and attempt."""
    return and_(
        RunStep.run_id == LLMCall.run_id,
        RunStep.step_index == LLMCall.step_index,
        RunStep.attempt == LLMCall.attempt,
    )


@dataclass(frozen=True)
class LLMUsage:
    """Calls, tokens and cost of a set of LLM calls."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


def run_usage(session: Session, run_id: int) -> tuple[LLMUsage, LLMUsage]:
    """(used, wasted): the usage of the run's committed steps, and of every other call."""
    used = RunStep.id.is_not(None)

    def split(column: Any) -> tuple[Any, Any]:
        return (
            func.coalesce(func.sum(case((used, column), else_=0)), 0),
            func.coalesce(func.sum(case((used, 0), else_=column)), 0),
        )

    row = session.execute(
        select(
            func.count(RunStep.id),
            func.count(LLMCall.id) - func.count(RunStep.id),
            *split(LLMCall.prompt_tokens),
            *split(LLMCall.completion_tokens),
            *split(LLMCall.cost),
        )
        .select_from(LLMCall)
        .outerjoin(RunStep, served_step())
        .where(LLMCall.run_id == run_id)
    ).one()
    return (
        LLMUsage(int(row[0]), int(row[2]), int(row[4]), float(row[6])),
        LLMUsage(int(row[1]), int(row[3]), int(row[5]), float(row[7])),
    )


def usage_values(used: LLMUsage, wasted: LLMUsage) -> dict[str, Any]:
    """The ``trading_runs`` columns holding a run's usage."""
    return {
        "llm_calls": used.calls,
        "prompt_tokens": used.prompt_tokens,
        "completion_tokens": used.completion_tokens,
        "llm_cost": used.cost,
        "wasted_llm_calls": wasted.calls,
        "wasted_prompt_tokens": wasted.prompt_tokens,
        "wasted_completion_tokens": wasted.completion_tokens,
        "wasted_llm_cost": wasted.cost,
    }


def uncounted_calls(session: Session, run_ids: list[int]) -> dict[int, int]:
    """Per run, its committed calls that were answered but carry no token count (a server
    whose usage block said 0 prompt tokens): their cost was never counted."""
    if not run_ids:
        return {}
    rows = session.execute(
        select(LLMCall.run_id, func.count(LLMCall.id))
        .join(RunStep, served_step())
        .where(LLMCall.run_id.in_(run_ids), LLMCall.status == "ok", LLMCall.prompt_tokens == 0)
        .group_by(LLMCall.run_id)
    ).all()
    return {run_id: int(n) for run_id, n in rows if run_id is not None}
