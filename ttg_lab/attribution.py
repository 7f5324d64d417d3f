"""What each rule did to a run: orders blocked, resized or forced, and the P&L effect.

The effect is measured by counterfactual replay: the run's recorded orders (as the agent
asked for them, before the gate) are replayed through the same engine step with the same
prices, costs and fills, once with all of the run's rules and once without each rule in
turn. No model is called, so it is cheap and exact for what it assumes: that the agent
would have asked for the same orders. That holds for a deterministic baseline whose
requests do not depend on earlier fills (buy-and-hold, for example); for an LLM, or a
strategy that sizes from its holdings, read the figure as the rule's first-order effect.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import select

from ttg_lab.engine.context import RunContext
from ttg_lab.engine.orders import place_order
from ttg_lab.engine.snapshot import RunSnapshot
from ttg_lab.engine.step import simulate_step
from ttg_lab.errors import NotFoundError
from ttg_lab.rules.constraints import RuleSet
from ttg_lab.store.database import Store
from ttg_lab.store.schema import GateDecisionRow, LedgerEntry, TradingRun

ATTRIBUTION_COLUMNS = [
    "rule",
    "origin",
    "blocked",
    "resized",
    "forced",
    "final_value",
    "final_without",
    "pnl_effect",
]


class RecordedOrders:
    """An agent that asks again for exactly what the original agent asked for."""

    def __init__(self, orders: dict[int, list[tuple[str, Any, Any]]]) -> None:
        self.orders = orders

    def run_step(self, ctx: RunContext) -> None:
        for action, symbol, quantity in self.orders.get(ctx.step_index, []):
            place_order(ctx, action, symbol, quantity)

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class RecordedRun:
    """What a counterfactual replay needs from a stored run."""

    snapshot: RunSnapshot
    period: tuple[Any, Any]
    steps_done: int
    final_value: float
    decisions: list[Any]  # GateDecisionRow, or RecordedOrder for runs without decisions


@dataclass(frozen=True)
class RecordedOrder:
    """An order as asked, rebuilt from the ledger of a run that kept no gate decisions
    (an imported AI-Trader run)."""

    step_index: int
    action: str
    symbol: str
    requested: float
    origin: str = "agent"
    verdict: str = "allow"
    firings: tuple[Any, ...] = ()


def _orders_from_ledger(session: Any, run_id: int) -> list[RecordedOrder]:
    rows = session.execute(
        select(LedgerEntry.step_index, LedgerEntry.action, LedgerEntry.symbol, LedgerEntry.quantity)
        .where(
            LedgerEntry.run_id == run_id,
            LedgerEntry.status != "none",
            LedgerEntry.action != "no_trade",
        )
        .order_by(LedgerEntry.id)
    ).all()
    return [RecordedOrder(int(s), str(a), str(sym), float(q)) for s, a, sym, q in rows]


def load_recorded(store: Store, run_id: int) -> RecordedRun:
    with store.session() as session:
        run = session.get(TradingRun, run_id)
        if run is None:
            raise NotFoundError(f"no run {run_id}")
        decisions = list(
            session.scalars(
                select(GateDecisionRow)
                .where(GateDecisionRow.run_id == run_id)
                .order_by(GateDecisionRow.id)
            )
        )
        orders: list[Any] = decisions or _orders_from_ledger(session, run_id)
        snapshot = RunSnapshot.from_json(run.strategy_snapshot)
        return RecordedRun(
            snapshot,
            (run.period_start, run.period_end),
            run.steps_done,
            run.final_value if run.final_value is not None else snapshot.initial_cash,
            orders,
        )


def replay(
    store: Store, recorded: RecordedRun, rules: RuleSet
) -> tuple[float, list[dict[str, Any]]]:
    """Final equity of the recorded orders replayed under ``rules``, and every gate
    decision the replay made."""
    snap = recorded.snapshot
    index = snap.index(store)
    calendar = index.calendar_between(*recorded.period)[: recorded.steps_done]
    orders: dict[int, list[tuple[str, Any, Any]]] = defaultdict(list)
    for row in recorded.decisions:
        if row.origin == "agent":
            orders[row.step_index].append((row.action, row.symbol, row.requested))
    ctx = snap.context(index, rules=rules)
    agent = RecordedOrders(dict(orders))
    equity = snap.initial_cash
    decisions: list[dict[str, Any]] = []
    for step, clock in enumerate(calendar):
        equity = simulate_step(ctx, agent, step, clock, equity)
        decisions.extend(ctx.record.decisions)
    return equity, decisions


def replay_with(store: Store, recorded: RecordedRun, rules: RuleSet) -> float:
    """Final equity of the recorded orders replayed under ``rules``."""
    return replay(store, recorded, rules)[0]


def attribution(store: Store, run_id: int) -> pd.DataFrame:
    """Per rule: orders blocked, resized and forced, and the P&L effect (actual final
    value minus the final value of the counterfactual replay without the rule)."""
    recorded = load_recorded(store, run_id)
    rules = recorded.snapshot.rules
    blocked: dict[str, int] = defaultdict(int)
    resized: dict[str, int] = defaultdict(int)
    forced: dict[str, int] = defaultdict(int)
    for row in recorded.decisions:
        if row.origin.startswith("rule:") and row.verdict != "reject":
            forced[row.origin.removeprefix("rule:")] += 1
        for name in {f["rule"] for f in row.firings}:
            if row.verdict == "reject":
                blocked[name] += 1
            elif row.verdict == "resize":
                resized[name] += 1
    actual = replay_with(store, recorded, rules)
    rows = []
    for rule in rules.constraints:
        without = replay_with(store, recorded, rules.without(rule.name))
        rows.append(
            {
                "rule": rule.name,
                "origin": rule.origin,
                "blocked": blocked[rule.name],
                "resized": resized[rule.name],
                "forced": forced[rule.name],
                "final_value": actual,
                "final_without": without,
                "pnl_effect": actual - without,
            }
        )
    return pd.DataFrame(rows, columns=ATTRIBUTION_COLUMNS)
