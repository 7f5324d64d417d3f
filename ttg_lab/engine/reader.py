"""The one way agents' tools read users' work: a reader that knows the acting user.

Every read of a run, its ledger, equity, reasoning, one of its trades or reasoning
entries first checks that the acting user may see the run (their own, a shared model's,
any for an admin); anything else is "not found", exactly like an id that does not
exist. The analyst's tools and the MCP services' run views hold a reader and no store,
so no tool can skip the check. Market data and news belong to everyone: the reader
passes those reads through, unscoped. What only analysis needs (metrics, counterfactual
replays) is added above, by :class:`ttg_lab.analyst.reader.AnalystReader`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import select

from ttg_lab.broker.costs import CostModel
from ttg_lab.engine.ledger import CITED_COLUMNS, LEDGER_COLUMNS
from ttg_lab.engine.snapshot import AgentPath, RunSnapshot
from ttg_lab.engine.stored_reasoning import search_reasoning
from ttg_lab.errors import NotFoundError
from ttg_lab.market.asof import PriceIndex
from ttg_lab.market.cache import data_fingerprint, price_index
from ttg_lab.news.search import NewsIndex
from ttg_lab.news.store import news_index
from ttg_lab.store.access import check_run
from ttg_lab.store.database import Store
from ttg_lab.store.leases import live_holder
from ttg_lab.store.schema import (
    LedgerEntry,
    ReasoningEntry,
    RunStatus,
    RunStep,
    TradingModel,
    TradingRun,
    User,
)

EQUITY_COLUMNS: list[str] = ["step_index", "ts", "cash", "equity", "holdings"]
"""What :func:`equity_frame` returns: the portfolio marked at each step's close."""

REASONING_COLUMNS: list[str] = ["id", "step_index", "ts", "type", "content", "context", "order_ids"]
"""What :func:`reasoning_frame` returns: the agent's reasoning entries."""


def ledger_frame(store: Store, run_id: int, columns: list[str] = LEDGER_COLUMNS) -> pd.DataFrame:
    """Run ``run_id``'s ledger rows in order (``columns``: :data:`LEDGER_COLUMNS` or a
    subset of ``id`` and them, such as :data:`~ttg_lab.engine.ledger.CITED_COLUMNS`)."""
    return _frame(
        store,
        select(*[getattr(LedgerEntry, c) for c in columns])
        .where(LedgerEntry.run_id == run_id)
        .order_by(LedgerEntry.id),
        columns,
    )


def equity_frame(store: Store, run_id: int) -> pd.DataFrame:
    """Run ``run_id``'s committed steps in order (:data:`EQUITY_COLUMNS`)."""
    return _frame(
        store,
        select(*[getattr(RunStep, c) for c in EQUITY_COLUMNS])
        .where(RunStep.run_id == run_id)
        .order_by(RunStep.step_index),
        EQUITY_COLUMNS,
    )


def reasoning_frame(store: Store, run_id: int) -> pd.DataFrame:
    """Run ``run_id``'s reasoning entries in order (:data:`REASONING_COLUMNS`)."""
    return _frame(
        store,
        select(*[getattr(ReasoningEntry, c) for c in REASONING_COLUMNS])
        .where(ReasoningEntry.run_id == run_id)
        .order_by(ReasoningEntry.id),
        REASONING_COLUMNS,
    )


def equity_curve(steps: pd.DataFrame) -> pd.Series:
    """The equity of an :func:`equity_frame`, indexed by the steps' times."""
    return pd.Series(
        steps["equity"].to_numpy(dtype=float), index=pd.DatetimeIndex(steps["ts"]), dtype=float
    )


def read_snapshot(store: Store, run_id: int) -> RunSnapshot:
    """Run ``run_id``'s snapshot (not checked: the caller checked who may see the run)."""
    with store.session() as session:
        stored = session.scalar(select(TradingRun.strategy_snapshot).where(TradingRun.id == run_id))
    if stored is None:
        raise NotFoundError(f"no run {run_id}")
    return RunSnapshot.from_json(stored)


def _frame(store: Store, query: Any, columns: list[str]) -> pd.DataFrame:
    with store.session() as session:
        rows = session.execute(query).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


@dataclass(frozen=True)
class RunInfo:
    """A run as the store has it when read: its row, its model's names and its snapshot
    (what defines it). Read by :func:`read_run`; a later read sees later progress."""

    id: int
    model_id: int
    model: str
    """The model's signature (its unique name in the store)."""
    model_name: str
    run_number: int
    status: RunStatus
    error: str | None
    mode: str
    start: datetime
    end: datetime
    started_at: datetime
    ended_at: datetime | None
    steps_done: int
    steps_total: int
    total_trades: int
    final_value: float | None
    final_return: float | None
    max_drawdown: float | None
    llm_calls: int
    llm_cost: float
    wasted_llm_calls: int
    wasted_llm_cost: float
    worker: str | None
    heartbeat_at: datetime | None
    live: bool
    """Whether a process still executes the run (its heartbeat is fresh)."""
    snapshot: RunSnapshot

    @property
    def period(self) -> tuple[datetime, datetime]:
        return (self.start, self.end)

    @property
    def total_llm_cost(self) -> float:
        """What the run's LLM calls cost, the wasted ones (lost steps) included."""
        return self.llm_cost + self.wasted_llm_cost

    @property
    def market(self) -> str:
        return self.snapshot.model.market

    @property
    def interval(self) -> str:
        return self.snapshot.interval

    @property
    def initial_cash(self) -> float:
        return self.snapshot.initial_cash

    @property
    def costs(self) -> CostModel:
        return self.snapshot.costs

    @property
    def path(self) -> AgentPath:
        """How the run decided: ``chat``, ``direct`` or ``imported``."""
        return self.snapshot.agent_path

    @property
    def masked(self) -> bool:
        """Whether the run's model saw masked symbols, prices and dates."""
        return self.snapshot.masked


def read_run(store: Store, run_id: int) -> RunInfo:
    """Run ``run_id`` as stored now (not checked: the caller checked who may see it)."""
    with store.session() as session:
        found = session.execute(
            select(TradingRun, TradingModel.signature, TradingModel.name)
            .join(TradingModel)
            .where(TradingRun.id == run_id)
        ).first()
        if found is None:
            raise NotFoundError(f"no run {run_id}")
        run, signature, name = found
        return RunInfo(
            id=run.id,
            model_id=run.model_id,
            model=signature,
            model_name=name,
            run_number=run.run_number,
            status=run.status,
            error=run.error,
            mode=run.mode,
            start=run.period_start,
            end=run.period_end,
            started_at=run.started_at,
            ended_at=run.ended_at,
            steps_done=run.steps_done,
            steps_total=run.steps_total,
            total_trades=run.total_trades,
            final_value=run.final_value,
            final_return=run.final_return,
            max_drawdown=run.max_drawdown,
            llm_calls=run.llm_calls,
            llm_cost=run.llm_cost,
            wasted_llm_calls=run.wasted_llm_calls,
            wasted_llm_cost=run.wasted_llm_cost,
            worker=run.worker,
            heartbeat_at=run.heartbeat_at,
            live=live_holder(store.url, run) is not None,
            snapshot=RunSnapshot.from_json(run.strategy_snapshot),
        )


def read_status(store: Store, run_id: int) -> RunStatus:
    """Run ``run_id``'s status as stored now."""
    with store.session() as session:
        status = session.scalar(select(TradingRun.status).where(TradingRun.id == run_id))
    if status is None:
        raise NotFoundError(f"no run {run_id}")
    return status


@dataclass(frozen=True)
class StepState:
    """The portfolio of a run's latest committed step."""

    cash: float
    holdings: dict[str, float]


@dataclass(frozen=True)
class TradeRecord:
    """One ledger row, as a citation shows it."""

    id: int
    run_id: int
    action: str
    symbol: str | None
    ts: datetime


@dataclass(frozen=True)
class ReasoningRecord:
    """One reasoning entry, as a citation shows it."""

    id: int
    run_id: int
    type: str
    ts: datetime


class RunReader:
    """Reads stored runs for one acting user; a run the user may not see is not found."""

    def __init__(self, store: Store, user: User) -> None:
        self._store = store
        self.user = user

    # -- the user's work: every read checks the run -----------------------------------
    def run(self, run_id: Any) -> RunInfo:
        """Run ``run_id`` if the user may see it."""
        check_run(self._store, self.user, run_id)
        return read_run(self._store, run_id)

    def model_runs(self, run_id: Any) -> dict[int, int]:
        """Run number -> run id of every run of the model of run ``run_id``."""
        model_id = self.run(run_id).model_id
        with self._store.session() as session:
            rows = session.execute(
                select(TradingRun.run_number, TradingRun.id).where(TradingRun.model_id == model_id)
            ).all()
        return {int(number): int(rid) for number, rid in rows}

    def ledger(self, run_id: Any) -> pd.DataFrame:
        """Every ledger row of the run, in order (columns: :data:`CITED_COLUMNS`)."""
        return ledger_frame(self._store, self.run(run_id).id, CITED_COLUMNS)

    def equity(self, run_id: Any) -> pd.Series:
        """The run's equity at each committed step's close."""
        return equity_curve(equity_frame(self._store, self.run(run_id).id))

    def last_step(self, run_id: Any) -> StepState | None:
        """The portfolio after the run's latest committed step (None before the first)."""
        rid = self.run(run_id).id
        with self._store.session() as session:
            last = session.scalars(
                select(RunStep)
                .where(RunStep.run_id == rid)
                .order_by(RunStep.step_index.desc())
                .limit(1)
            ).first()
            if last is None:
                return None
            return StepState(last.cash, {k: float(v) for k, v in (last.holdings or {}).items()})

    def reasoning(self, run_id: Any, **filters: Any) -> tuple[pd.DataFrame, int]:
        """The run's reasoning entries matching ``filters`` (see
        :func:`ttg_lab.engine.stored_reasoning.search_reasoning`) and how many match in all."""
        return search_reasoning(self._store, run_id=self.run(run_id).id, **filters)

    def trade(self, ledger_id: Any) -> TradeRecord:
        """Ledger row ``ledger_id`` if the user may see its run."""
        found = None
        if _is_id(ledger_id):
            with self._store.session() as session:
                row = session.get(LedgerEntry, ledger_id)
                if row is not None:
                    found = TradeRecord(row.id, row.run_id, row.action, row.symbol, row.ts)
        if found is None or not self._sees(found.run_id):
            raise NotFoundError(f"no trade {ledger_id!r}")
        return found

    def reasoning_entry(self, entry_id: Any) -> ReasoningRecord:
        """Reasoning entry ``entry_id`` if the user may see its run."""
        found = None
        if _is_id(entry_id):
            with self._store.session() as session:
                row = session.get(ReasoningEntry, entry_id)
                if row is not None:
                    found = ReasoningRecord(row.id, row.run_id, row.type, row.ts)
        if found is None or not self._sees(found.run_id):
            raise NotFoundError(f"no reasoning entry {entry_id!r}")
        return found

    def _sees(self, run_id: int) -> bool:
        try:
            check_run(self._store, self.user, run_id)
        except NotFoundError:
            return False
        return True

    # -- everyone's data: market prices and news --------------------------------------
    def price_index(self, market: str, interval: str, fingerprint: str | None = None) -> PriceIndex:
        """The in-memory prices of a market's interval (as of ``fingerprint``: a run's
        data version; the current data when None)."""
        fingerprint = fingerprint or data_fingerprint(self._store, market, interval)
        return price_index(self._store, market, interval, fingerprint)

    def news_index(self) -> NewsIndex:
        """The dated news corpus of the search tool."""
        return news_index(self._store)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
