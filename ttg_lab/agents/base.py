"""The direct agent, and policies by AI model id.

An agent implements the engine's :class:`~ttg_lab.engine.step.Agent`: it acts on a step
only through the orders and tool functions over the run context, and leaves its
reasoning and messages in the step's record. Policies have ids ``baseline/<name>``
(shipped) or ``policy/<name>`` (registered); every other id is an LLM (see
:mod:`ttg_lab.agents.factory`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ttg_lab.agents.params import validate_parameters
from ttg_lab.agents.policy import BASELINE_PREFIX, POLICIES, Decision, Policy, policy_class
from ttg_lab.engine.context import RunContext
from ttg_lab.engine.orders import place_order
from ttg_lab.jsonsafe import echo, json_safe


class DirectAgent:
    """Runs a baseline policy by placing its orders directly (the fast path)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def run_step(self, ctx: RunContext) -> None:
        decision = self.policy.step(ctx)
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


def baseline_ids() -> list[str]:
    """AI model ids of the shipped baselines."""
    return [name for name in POLICIES.names() if name.startswith(BASELINE_PREFIX)]


def make_policy(ai_model_id: str, parameters: dict[str, Any] | None) -> Policy:
    """A policy with validated parameters."""
    cls = policy_class(ai_model_id)
    return cls(**validate_parameters(cls.params, parameters, ai_model_id))
