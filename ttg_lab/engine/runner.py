"""The run loop: step through the calendar, let the agent act, commit each step.

Each step is one transaction (ledger rows, reasoning, messages, the marked-to-market
portfolio and the run's progress). A crash loses at most the step in flight; resuming
restores the portfolio from the last committed step and continues with the next one.
A transaction that meets a locked or dropped database is run again (see
:func:`ttg_lab.store.database.retrying`); a step found committed already is not written twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update

from ttg_lab.agents.base import Agent
from ttg_lab.engine.events import EventBus, RunEvent
from ttg_lab.engine.step import simulate_step
from ttg_lab.metrics.runs import store_metrics
from ttg_lab.portfolio import Portfolio
from ttg_lab.rules.risk import RiskState
from ttg_lab.secrets import redact
from ttg_lab.store.database import Store
from ttg_lab.store.schema import (
    AgentLog,
    GateDecisionRow,
    LedgerEntry,
    LLMCall,
    ReasoningEntry,
    RunStep,
    TradingRun,
    utcnow,
)
from ttg_lab.tools.context import RunContext

log = logging.getLogger(__name__)


def worker_id() -> str:
    """host:pid of this process, stored on the runs it executes."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class RunPlan:
    """Everything the loop needs, prepared before the first step."""

    run_id: int
    initial_cash: float
    calendar: list[datetime]
    start_step: int
    agent: Agent
    ctx: RunContext
    last_marked: float


def max_drawdown(equity: list[float]) -> float:
    """Largest peak-to-trough fall of an equity series, as a negative fraction (0 if none)."""
    peak = float("-inf")
    worst = 0.0
    for value in equity:
        peak = max(peak, value)
        if peak > 0:
            worst = min(worst, value / peak - 1.0)
    return worst


class RunExecutor:
    """Executes one prepared run; ``stop_event`` ends it cleanly between steps."""

    def __init__(
        self, store: Store, plan: RunPlan, bus: EventBus, stop_event: threading.Event
    ) -> None:
        self.store = store
        self.plan = plan
        self.bus = bus
        self.stop_event = stop_event

    def execute(self) -> str:
        """Run to the end (or stop/failure); returns the final status."""
        plan = self.plan
        self._emit(
            "started", f"run {plan.run_id} from step {plan.start_step} of {len(plan.calendar)}"
        )
        step = plan.start_step
        try:
            for step in range(plan.start_step, len(plan.calendar)):
                if self.stop_event.is_set():
                    return self._finish("stopped", None)
                self._step(step, plan.calendar[step])
        except Exception as exc:  # any failure ends the run with its reason stored
            when = plan.calendar[step]
            reason = redact(f"step {step} ({when:%Y-%m-%d %H:%M}): {type(exc).__name__}: {exc}")
            log.debug("run %s failed\n%s", plan.run_id, redact(traceback.format_exc()))
            self._emit("error", reason)
            return self._finish("failed", reason)
        finally:
            plan.agent.close()
        return self._finish("completed", None)

    def _step(self, step: int, clock: datetime) -> None:
        ctx = self.plan.ctx
        equity = simulate_step(ctx, self.plan.agent, step, clock, self.plan.last_marked)
        self.plan.last_marked = equity
        self.store.retrying(lambda: self._save_step(step, clock, equity), f"commit of step {step}")
        self._emit_step(step, clock, equity, ctx.record.ledger)

    def _save_step(self, step: int, clock: datetime, equity: float) -> None:
        """Write the step in one transaction, unless an earlier attempt committed it (its
        connection dropped after the commit reached the server)."""
        ctx = self.plan.ctx
        record = ctx.record
        filled = len(record.filled)
        run_id = self.plan.run_id
        with self.store.session() as session:
            done = session.scalar(
                select(RunStep.id).where(RunStep.run_id == run_id, RunStep.step_index == step)
            )
            if done is not None:
                return
            session.execute(
                insert(LedgerEntry), [{**row, "run_id": run_id} for row in record.ledger]
            )
            if record.reasoning:
                session.execute(
                    insert(ReasoningEntry),
                    [
                        {
                            "run_id": run_id,
                            "step_index": step,
                            "ts": clock,
                            "order_ids": [],
                            **entry,
                        }
                        for entry in record.reasoning
                    ],
                )
            if record.decisions:
                session.execute(
                    insert(GateDecisionRow), [{**d, "run_id": run_id} for d in record.decisions]
                )
            if record.messages:
                session.add(
                    AgentLog(run_id=run_id, step_index=step, ts=clock, messages=record.messages)
                )
            session.add(
                RunStep(
                    run_id=run_id,
                    step_index=step,
                    ts=clock,
                    cash=ctx.portfolio.cash,
                    equity=equity,
                    holdings=ctx.portfolio.snapshot(),
                    risk_state=ctx.risk.to_dict(),
                )
            )
            session.execute(
                update(TradingRun)
                .where(TradingRun.id == run_id)
                .values(
                    steps_done=step + 1,
                    total_trades=TradingRun.total_trades + filled,
                    llm_calls=TradingRun.llm_calls + record.llm_calls,
                    prompt_tokens=TradingRun.prompt_tokens + record.prompt_tokens,
                    completion_tokens=TradingRun.completion_tokens + record.completion_tokens,
                    llm_cost=TradingRun.llm_cost + record.llm_cost,
                    heartbeat_at=utcnow(),
                )
            )

    def _emit_step(
        self, step: int, clock: datetime, equity: float, ledger: list[dict[str, Any]]
    ) -> None:
        for message in self.plan.ctx.record.messages:
            for call in message.get("tool_calls") or []:
                args = ", ".join(f"{k}={v}" for k, v in (call.get("args") or {}).items())
                self._emit("tool", f"{call.get('name')}({args})", step, clock, call)
            for call in message.get("invalid_tool_calls") or []:
                text = f"malformed tool call {call.get('name')}: {call.get('error')}"
                self._emit("refusal", text, step, clock, call)
        for row in ledger:
            if row["status"] == "filled":
                self._emit(
                    "fill",
                    f"{row['action']} {row['quantity']:g} {row['symbol']} @ {row['fill_price']:.4f}"
                    f" (fees {row['fees']:.2f})",
                    step,
                    clock,
                    row,
                )
            elif row["status"] == "rejected":
                self._emit(
                    "refusal",
                    f"{row['action']} {row['symbol']} refused: {row['reason']}",
                    step,
                    clock,
                    row,
                )
        self._emit(
            "step",
            f"{clock:%Y-%m-%d %H:%M} equity {equity:,.2f} cash {self.plan.ctx.portfolio.cash:,.2f}",
            step,
            clock,
            {
                "equity": equity,
                "cash": self.plan.ctx.portfolio.cash,
                "done": step + 1,
                "total": len(self.plan.calendar),
                "positions": self.plan.ctx.portfolio.snapshot(),
            },
        )

    def _finish(self, status: str, error: str | None) -> str:
        final_value = self.store.retrying(
            lambda: self._save_end(status, error), f"recording the end of run {self.plan.run_id}"
        )
        self.store.retrying(
            lambda: store_metrics(self.store, self.plan.run_id),
            f"storing the metrics of run {self.plan.run_id}",
        )
        self._emit(
            "ended",
            f"run {self.plan.run_id} {status}" + (f": {error}" if error else ""),
            data={"status": status, "final_value": final_value},
        )
        return status

    def _save_end(self, status: str, error: str | None) -> float:
        """Store the run's status and totals; returns its final value."""
        run_id = self.plan.run_id
        with self.store.session() as session:
            equity = list(
                session.scalars(
                    select(RunStep.equity)
                    .where(RunStep.run_id == run_id)
                    .order_by(RunStep.step_index)
                )
            )
            trades = session.scalar(
                select(func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.run_id == run_id, LedgerEntry.status == "filled")
            )
            usage = session.execute(
                select(
                    func.count(LLMCall.id),
                    func.coalesce(func.sum(LLMCall.prompt_tokens), 0),
                    func.coalesce(func.sum(LLMCall.completion_tokens), 0),
                    func.coalesce(func.sum(LLMCall.cost), 0.0),
                ).where(LLMCall.run_id == run_id)
            ).one()
            final_value = equity[-1] if equity else self.plan.initial_cash
            session.execute(
                update(TradingRun)
                .where(TradingRun.id == run_id)
                .values(
                    status=status,
                    error=error,
                    ended_at=utcnow(),
                    total_trades=trades or 0,
                    final_value=final_value,
                    final_return=final_value / self.plan.initial_cash - 1.0,
                    max_drawdown=max_drawdown(equity),
                    llm_calls=usage[0],
                    prompt_tokens=usage[1],
                    completion_tokens=usage[2],
                    llm_cost=float(usage[3]),
                    worker=None,
                )
            )
        return final_value

    def _emit(
        self,
        kind: str,
        message: str,
        step: int | None = None,
        clock: datetime | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.bus.emit(RunEvent(self.plan.run_id, kind, message, step, clock, data or {}))


def restore_state(
    store: Store, run_id: int, initial_cash: float
) -> tuple[Portfolio, RiskState, float, int]:
    """Portfolio, risk state and marked equity after the last committed step, and the
    next step to run (a fresh portfolio and step 0 for a new run)."""

    def last_step() -> RunStep | None:
        with store.session() as session:
            return session.scalars(
                select(RunStep)
                .where(RunStep.run_id == run_id)
                .order_by(RunStep.step_index.desc())
                .limit(1)
            ).first()

    last = store.retrying(last_step, f"reading the last step of run {run_id}")
    if last is None:
        return Portfolio(initial_cash), RiskState(), initial_cash, 0
    portfolio = Portfolio(last.cash, {k: float(v) for k, v in last.holdings.items()})
    return portfolio, RiskState.from_dict(last.risk_state), last.equity, last.step_index + 1
