"""The run loop: step through the calendar, let the agent act, commit each step.

Each step is one transaction (ledger rows, reasoning, messages, the marked-to-market
portfolio and the run's progress). A crash loses at most the step in flight; resuming
restores the portfolio from the last committed step and continues with the next one.
A step whose next model call could pass the run's budget is lost the same way, and the
run ends ``stopped`` with the reason (see :mod:`ttg_lab.engine.budget`).
A transaction that meets a locked or dropped database is run again (see
:func:`ttg_lab.store.database.retrying`); a step found committed already is not written twice.

The loop runs under the run's lease (:mod:`ttg_lab.store.leases`): every step commit
starts with an UPDATE conditioned on the lease, so a process whose run was taken over
stops before writing anything, and never goes on with its own in-memory portfolio.

A forward run's calendar grows as it runs: instead of a fixed list of clocks, the loop
asks its :class:`StepFeed` for each next step (and the prices that step may see), waiting
on it for the bar; each such step stores the hash of the bars it could see
(``run_steps.data_seen``), and a step missed while the run was down may be recorded
without a decision (``skipped``), its equity marked at the bar's open.

The engine drives its agent through its own protocols (:class:`~ttg_lab.engine.step.Agent`,
:class:`AgentBuilder`) and stores a run's results through the end-of-run hook it is given
(the lab passes the metrics), so it imports neither the agents nor the analysis above it.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.orm import Session

from ttg_lab.broker.portfolio import Portfolio
from ttg_lab.engine.budget import BudgetExceededError
from ttg_lab.engine.context import RunContext
from ttg_lab.engine.equity import max_drawdown
from ttg_lab.engine.events import EventBus, RunEvent
from ttg_lab.engine.ledger import LedgerRow
from ttg_lab.engine.snapshot import RunSnapshot
from ttg_lab.engine.step import Agent, mark_to_market, simulate_step
from ttg_lab.errors import RunStateError
from ttg_lab.market.asof import PriceIndex
from ttg_lab.news.search import NewsIndex
from ttg_lab.rules.risk import RiskState
from ttg_lab.secrets import redact
from ttg_lab.store.database import Store
from ttg_lab.store.leases import Lease, LeaseKeeper, RunLostError, stale_after, updated
from ttg_lab.store.schema import (
    AgentLog,
    GateDecisionRow,
    LedgerEntry,
    ReasoningEntry,
    RunStatus,
    RunStep,
    TradingRun,
    utcnow,
)
from ttg_lab.store.usage import run_usage, usage_values

log = logging.getLogger(__name__)

EndHook = Callable[[Store, int], object]
"""Called with the store and the run id once a run's end is recorded, before its "ended"
event (the lab stores the run's metrics); a failure is reported, never raised."""


class AgentBuilder(Protocol):
    """An agent checked and ready to be built for a run (the agents' recipe is one)."""

    def build(self, run_id: int, attempt: int, context: RunContext) -> Agent: ...


@dataclass(frozen=True)
class FeedStep:
    """A growing calendar's next step: its clock, the prices it may see (the bars before
    it and the opens at it), the hash of those bars, and whether it is recorded without a
    decision (missed while the run was down, and the run skips those)."""

    clock: datetime
    index: PriceIndex
    data_seen: str
    skipped: bool = False


class StepFeed(Protocol):
    """Where a run whose calendar grows as it runs (a forward run) gets its steps."""

    def next_step(self, after: datetime | None, stop: threading.Event) -> FeedStep | None:
        """The step after clock ``after`` (None: the run's first), once its bar's open is
        known; None when the run is over or ``stop`` was set while waiting."""
        ...


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
    last_clock: datetime | None = None


@dataclass(frozen=True)
class RunSetup:
    """What a run needs that does not depend on its progress, prepared (and so checked)
    before its row is written or claimed: a run that cannot start is refused with nothing
    written."""

    snapshot: RunSnapshot
    index: PriceIndex
    calendar: list[datetime]
    news: NewsIndex
    agent: AgentBuilder
    feed: StepFeed | None = None
    """Set for a run whose calendar grows (``calendar`` is then the steps expected)."""

    @property
    def initial_cash(self) -> float:
        return self.snapshot.initial_cash

    def plan(self, store: Store, lease: Lease) -> RunPlan:
        """The plan of the lease's execution, from the run's last committed step."""
        state = restore_state(store, lease.run_id, self.initial_cash)
        ctx = self.snapshot.context(
            self.index, lease.run_id, state.portfolio, news=self.news, risk=state.risk
        )
        agent = self.agent.build(lease.run_id, lease.attempt, ctx)
        return RunPlan(
            lease.run_id,
            self.initial_cash,
            self.calendar,
            state.next_step,
            agent,
            ctx,
            state.last_marked,
            state.last_clock,
        )


class RunExecutor:
    """Executes one run under its lease; ``stop_event`` ends it cleanly between steps and
    ``on_end`` stores its results once its end is recorded."""

    def __init__(
        self,
        store: Store,
        setup: RunSetup,
        lease: Lease,
        bus: EventBus,
        stop_event: threading.Event,
        on_end: EndHook,
    ) -> None:
        self.store = store
        self.setup = setup
        self.lease = lease
        self.bus = bus
        self.stop_event = stop_event
        self.on_end = on_end

    @property
    def run_id(self) -> int:
        return self.lease.run_id

    def execute(self) -> RunStatus:
        """Run to the end (or stop, or failure); returns the status the run ended with.

        Raises :class:`RunLostError` when another process took the run over (or it was
        deleted): this process then stops and writes nothing more; the run is the other's.
        """
        try:
            with LeaseKeeper(self.store, self.lease) as keeper:
                status, error = self._run(keeper)
            return self._finish(status, error)
        except RunLostError as lost:
            self._emit("error", str(lost))
            self._emit("ended", f"run {self.run_id}: {lost}", data={"status": "taken over"})
            raise

    def _run(self, keeper: LeaseKeeper) -> tuple[RunStatus, str | None]:
        """The steps; returns the run's end status and error (None when it completed)."""
        plan: RunPlan | None = None
        step: int | None = None
        clock: datetime | None = None
        try:
            plan = self.setup.plan(self.store, self.lease)
            self.store.retrying(self._save_usage, f"accounting the LLM calls of run {self.run_id}")
            self._emit(
                "started", f"run {self.run_id} from step {plan.start_step} of {len(plan.calendar)}"
            )
            feed = self.setup.feed
            step = plan.start_step
            while feed is not None or step < len(plan.calendar):
                if self.stop_event.is_set():
                    return "stopped", None
                if keeper.lost is not None:
                    raise keeper.lost
                if feed is None:
                    clock = plan.calendar[step]
                    self._step(plan, step, clock)
                else:
                    clock = None  # while waiting for the next bar, no step is in flight
                    fed = feed.next_step(plan.last_clock, self.stop_event)
                    if fed is None:
                        return ("stopped" if self.stop_event.is_set() else "completed"), None
                    clock = fed.clock
                    self._fed_step(plan, step, fed)
                step += 1
        except Exception as exc:  # any failure ends the run with its reason stored ...
            where = (
                "before its first step"
                if plan is None or step is None
                else f"step {step} ({clock:%Y-%m-%d %H:%M})"
                if clock is not None
                else f"waiting for step {step}"
            )
            lost = exc if isinstance(exc, RunLostError) else self._lost()
            if lost is not None:  # ... unless it is no longer ours (a takeover's UNIQUE error)
                raise RunLostError(f"{lost}; this process stopped at {where}") from exc
            if isinstance(exc, BudgetExceededError):  # the step in flight is not committed
                reason = redact(f"{where}, not committed: {exc}")
                self._emit("error", reason)
                return "stopped", reason
            reason = redact(f"{where}: {type(exc).__name__}: {exc}")
            log.debug("run %s failed\n%s", self.run_id, redact(traceback.format_exc()))
            self._emit("error", reason)
            return "failed", reason
        finally:
            if plan is not None:
                self._close(plan.agent)
        return "completed", None

    def _close(self, agent: Agent) -> None:
        try:
            agent.close()
        except Exception as exc:  # closing must not change how the run ended
            log.warning("run %s: closing its agent failed: %s", self.run_id, redact(str(exc)))

    def _lost(self) -> RunLostError | None:
        """Whether the lease was lost (None also when the database cannot tell)."""
        try:
            with self.store.session() as session:
                return self.lease.lost(session)
        except Exception:
            return None

    def _step(
        self, plan: RunPlan, step: int, clock: datetime, data_seen: str | None = None
    ) -> None:
        ctx = plan.ctx
        equity = simulate_step(ctx, plan.agent, step, clock, plan.last_marked)
        plan.last_marked, plan.last_clock = equity, clock
        self.store.retrying(
            lambda: self._save_step(plan, step, clock, equity, data_seen), f"commit of step {step}"
        )
        self._emit_step(plan, step, clock, equity, ctx.record.ledger)

    def _fed_step(self, plan: RunPlan, step: int, fed: FeedStep) -> None:
        """A step of a growing calendar, on the prices its feed gave (decided, or recorded
        without a decision: the portfolio unchanged, marked at the bar's open)."""
        plan.ctx.index = fed.index
        if not fed.skipped:
            self._step(plan, step, fed.clock, fed.data_seen)
            return
        ctx = plan.ctx
        ctx.advance(step, fed.clock)
        equity = mark_to_market(ctx, fed.clock)  # the feed's bar at the clock is its open
        plan.last_marked, plan.last_clock = equity, fed.clock
        self.store.retrying(
            lambda: self._save_step(plan, step, fed.clock, equity, fed.data_seen, skipped=True),
            f"commit of step {step}",
        )
        self._emit("skipped", "skipped: missed while the run was down", step, fed.clock)
        self._emit_step(plan, step, fed.clock, equity, [])

    def _save_step(
        self,
        plan: RunPlan,
        step: int,
        clock: datetime,
        equity: float,
        data_seen: str | None = None,
        skipped: bool = False,
    ) -> None:
        """Write the step in one transaction that first advances the run's progress under
        the lease: a run taken over stops here, before writing anything. A step this
        lease committed already (its connection dropped after the commit reached the
        server) is not written twice."""
        ctx = plan.ctx
        record = ctx.record
        run_id = self.run_id
        with self.store.session() as session:
            progressed = updated(
                session,
                update(TradingRun)
                .where(self.lease.held(), TradingRun.steps_done == step)
                .values(
                    steps_done=step + 1,
                    total_trades=TradingRun.total_trades + len(record.filled),
                    llm_calls=TradingRun.llm_calls + record.llm_calls,
                    prompt_tokens=TradingRun.prompt_tokens + record.prompt_tokens,
                    completion_tokens=TradingRun.completion_tokens + record.completion_tokens,
                    llm_cost=TradingRun.llm_cost + record.llm_cost,
                    # a growing calendar may pass the steps and period it expected
                    steps_total=case(
                        (TradingRun.steps_total > step, TradingRun.steps_total), else_=step + 1
                    ),
                    period_end=case(
                        (TradingRun.period_end < clock, clock), else_=TradingRun.period_end
                    ),
                    heartbeat_at=utcnow(),
                ),
            )
            if progressed != 1:
                committed = session.scalar(
                    select(RunStep.attempt).where(
                        RunStep.run_id == run_id, RunStep.step_index == step
                    )
                )
                if committed == self.lease.attempt:
                    return
                raise self.lease.lost(session) or RunStateError(
                    f"run {run_id}: step {step} does not follow the progress stored"
                )
            if record.ledger:  # a skipped step decided nothing
                session.execute(
                    insert(LedgerEntry),
                    [{**row.as_record(), "run_id": run_id} for row in record.ledger],
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
                    attempt=self.lease.attempt,
                    data_seen=data_seen,
                    skipped=skipped,
                )
            )

    def _save_usage(self) -> None:
        """Account the run's LLM calls afresh (calls of steps lost before this execution
        are wasted), under the lease."""
        with self.store.session() as session:
            values = usage_values(*run_usage(session, self.run_id))
            if updated(session, update(TradingRun).where(self.lease.held()).values(values)) != 1:
                raise self.lease.lost(session) or RunStateError(f"run {self.run_id} vanished")

    def _emit_step(
        self, plan: RunPlan, step: int, clock: datetime, equity: float, ledger: list[LedgerRow]
    ) -> None:
        for kind, text in plan.ctx.record.events:
            self._emit(kind, text, step, clock)
        for message in plan.ctx.record.messages:
            for call in message.get("tool_calls") or []:
                args = ", ".join(f"{k}={v}" for k, v in (call.get("args") or {}).items())
                self._emit("tool", f"{call.get('name')}({args})", step, clock, call)
            for call in message.get("invalid_tool_calls") or []:
                text = f"malformed tool call {call.get('name')}: {call.get('error')}"
                self._emit("refusal", text, step, clock, call)
        for row in ledger:
            if row.status == "filled":
                assert row.fill_price is not None  # a fill has its price
                self._emit(
                    "fill",
                    f"{row.action} {row.quantity:g} {row.symbol} @ {row.fill_price:.4f}"
                    f" (fees {row.fees:.2f})",
                    step,
                    clock,
                    row.as_record(),
                )
            elif row.status == "rejected":
                self._emit(
                    "refusal",
                    f"{row.action} {row.symbol} refused: {row.reason}",
                    step,
                    clock,
                    row.as_record(),
                )
        self._emit(
            "step",
            f"{clock:%Y-%m-%d %H:%M} equity {equity:,.2f} cash {plan.ctx.portfolio.cash:,.2f}",
            step,
            clock,
            {
                "equity": equity,
                "cash": plan.ctx.portfolio.cash,
                "done": step + 1,
                "total": len(plan.calendar),
                "positions": plan.ctx.portfolio.snapshot(),
            },
        )

    def _finish(self, status: RunStatus, error: str | None) -> RunStatus:
        """Record how the run ended; returns that status, or ``failed`` when the end could
        not be recorded (the run then shows ``running`` until its heartbeat is stale, and
        any process may resume it)."""
        try:
            final_value = self.store.retrying(
                lambda: self._save_end(status, error), f"recording the end of run {self.run_id}"
            )
        except RunLostError:
            raise
        except Exception as exc:
            reason = redact(
                f"the end of run {self.run_id} ({status}) could not be recorded: "
                f"{type(exc).__name__}: {exc}; it shows 'running' until its heartbeat is "
                f"{stale_after():g} s old, then any process may resume it"
            )
            self._emit("error", reason)
            self._emit("ended", f"run {self.run_id} failed: {reason}", data={"status": "failed"})
            return "failed"
        try:
            self.store.retrying(
                lambda: self.on_end(self.store, self.run_id),
                f"storing the metrics of run {self.run_id}",
            )
        except Exception as exc:  # the end is recorded; lab.metrics(run) computes them again
            self._emit("error", redact(f"metrics of run {self.run_id} not stored: {exc}"))
        self._emit(
            "ended",
            f"run {self.run_id} {status}" + (f": {error}" if error else ""),
            data={"status": status, "final_value": final_value},
        )
        return status

    def _save_end(self, status: RunStatus, error: str | None) -> float:
        """Store the run's status and totals and release its lease; returns its final
        value."""
        run_id = self.run_id
        initial_cash = self.setup.initial_cash
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
            final_value = equity[-1] if equity else initial_cash
            # a grown calendar that completed expected more bars than came (holidays)
            grown = (
                {"steps_total": len(equity)} if self.setup.feed and status == "completed" else {}
            )
            ended = updated(
                session,
                update(TradingRun)
                .where(self.lease.held())
                .values(
                    status=status,
                    error=error,
                    ended_at=utcnow(),
                    total_trades=trades or 0,
                    final_value=final_value,
                    final_return=final_value / initial_cash - 1.0,
                    max_drawdown=max_drawdown(equity),
                    worker=None,
                    **grown,
                    **usage_values(*run_usage(session, run_id)),
                ),
            )
            if ended != 1 and not self._ended_already(session, status):
                raise self.lease.lost(session) or RunStateError(f"run {run_id} vanished")
        return final_value

    def _ended_already(self, session: Session, status: RunStatus) -> bool:
        """Whether an earlier try of the end's transaction committed it (its connection
        dropped after the commit reached the server)."""
        run = session.get(TradingRun, self.run_id, populate_existing=True)
        return (
            run is not None
            and run.attempt == self.lease.attempt
            and run.worker is None
            and run.status == status
        )

    def _emit(
        self,
        kind: str,
        message: str,
        step: int | None = None,
        clock: datetime | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.bus.emit(RunEvent(self.run_id, kind, message, step, clock, data or {}))


@dataclass(frozen=True)
class Restored:
    """A run's state after its last committed step, and the step to run next."""

    portfolio: Portfolio
    risk: RiskState
    last_marked: float
    next_step: int
    last_clock: datetime | None


def restore_state(store: Store, run_id: int, initial_cash: float) -> Restored:
    """Portfolio, risk state, marked equity and clock after the last committed step, and
    the next step to run (a fresh portfolio and step 0 for a new run)."""

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
        return Restored(Portfolio(initial_cash), RiskState(), initial_cash, 0, None)
    portfolio = Portfolio(last.cash, {k: float(v) for k, v in last.holdings.items()})
    return Restored(
        portfolio,
        RiskState.from_dict(last.risk_state),
        last.equity,
        last.step_index + 1,
        last.ts,
    )
