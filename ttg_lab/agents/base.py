"""The direct agent, and the registry of agents by AI model id.

An agent implements the engine's :class:`~ttg_lab.engine.step.Agent`: it acts on a step
only through the orders and tool functions over the run context, and leaves its
reasoning and messages in the step's record. Offline baselines have ids
``baseline/<name>``; every other id is an LLM (see :mod:`ttg_lab.agents.factory`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ttg_lab.agents.baselines import POLICIES, Decision, Policy
from ttg_lab.agents.params import validate_parameters
from ttg_lab.engine.context import RunContext
from ttg_lab.engine.orders import place_order
from ttg_lab.errors import NotFoundError
from ttg_lab.jsonsafe import echo, json_safe

BASELINE_PREFIX = "baseline/"


class DirectAgent:
    """Runs a baseline policy by placing its orders directly (the fast path)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def run_step(self, ctx: RunContext) -> None:
        decision = self.policy.decide(ctx)
        answers = [
            place_order(ctx, order.action, order.symbol, order.quantity)
            for order in decision.orders
        ]
        record_decision(ctx, self.policy, decision, answers)

    def close(self) -> None:
        """Nothing to release on the direct path."""


def record_decision(
    ctx: RunContext, policy: Policy, decision: Decision, answers: list[dict[str, Any]]
) -> None:
    """Reasoning entries and a message log for a baseline decision."""
    order_ids = [a["order_id"] for a in answers]
    known: dict[str, Any] = {"clock": ctx.clock.isoformat(sep=" "), "cash": ctx.portfolio.cash}
    if ctx.risk.close_fills:  # how its last market-on-close orders filled
        known["filled_at_last_close"] = [fill.describe() for fill in ctx.risk.close_fills]
    seen = json_safe({**known, **decision.seen})
    if ctx.step_index == 0:
        ctx.record.reasoning.append({"type": "plan", "content": policy.plan(), "context": {}})
    if decision.analysis:
        ctx.record.reasoning.append(
            {"type": "analysis", "content": decision.analysis, "context": seen}
        )
    if decision.orders:
        outcome = "; ".join(
            f"{a['action']} {a['symbol']}: {a['status']}"
            + (f" ({a['reason']})" if a.get("reason") else "")
            for a in answers
        )
        ctx.record.reasoning.append(
            {
                "type": "decision",
                "content": f"{decision.rationale} Outcome: {outcome}",
                "context": seen,
                "order_ids": order_ids,
            }
        )
    ctx.record.messages.extend(
        [
            {
                "role": "assistant",
                "content": decision.analysis,
                "tool_calls": [{k: echo(v) for k, v in asdict(o).items()} for o in decision.orders],
            },
            *({"role": "tool", "content": a} for a in answers),
        ]
    )


def is_baseline(ai_model_id: str) -> bool:
    return ai_model_id.startswith(BASELINE_PREFIX)


def baseline_ids() -> list[str]:
    """AI model ids of the offline baselines."""
    return [BASELINE_PREFIX + name for name in POLICIES]


def policy_class(ai_model_id: str) -> type[Policy]:
    """The baseline policy behind a ``baseline/<name>`` id."""
    name = ai_model_id.removeprefix(BASELINE_PREFIX)
    if is_baseline(ai_model_id) and name in POLICIES:
        return POLICIES[name]
    known = ", ".join(baseline_ids())
    raise NotFoundError(f"unknown baseline {ai_model_id!r}; baselines: {known}")


def make_policy(ai_model_id: str, parameters: dict[str, Any] | None) -> Policy:
    """A baseline policy with validated parameters."""
    cls = policy_class(ai_model_id)
    return cls(**validate_parameters(cls.params, parameters, ai_model_id))
