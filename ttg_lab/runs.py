"""Starting, stopping, resuming and reading runs.

``RunService.start`` records the run (its number per model and a snapshot of everything
that defines it), then executes it in a background thread so notebooks stay responsive.
A :class:`RunHandle` stops it, waits for it, and reads what it wrote.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ttg_lab.agents.factory import check_path, prepare_agent, validate_agent
from ttg_lab.broker.costs import CostModel, resolve_cost_model
from ttg_lab.broker.fills import check_fill_policy
from ttg_lab.dates import day_of, inclusive_end, parse_optional_date
from ttg_lab.engine.events import EventBus, RunEvent, Subscriber
from ttg_lab.engine.loop import EndHook, RunExecutor, RunSetup
from ttg_lab.errors import NotFoundError, RunStateError, ValidationError
from ttg_lab.llm.prompt import PROMPT_VERSION
from ttg_lab.market.bars import MODES
from ttg_lab.market.cache import data_fingerprint, price_index
from ttg_lab.market.markets import get_market
from ttg_lab.model_rules import RuleService
from ttg_lab.models import ModelInfo, ModelService
from ttg_lab.news.store import news_index
from ttg_lab.rules.constraints import RuleSet
from ttg_lab.store.access import check_run, visible_models
from ttg_lab.store.database import Store
from ttg_lab.store.leases import (
    Lease,
    RunLostError,
    check_claimable,
    claim,
    live_holder,
    stale_after,
    worker_id,
)
from ttg_lab.store.schema import (
    LedgerEntry,
    ReasoningEntry,
    RunStatus,
    RunStep,
    TradingModel,
    TradingRun,
    utcnow,
)
from ttg_lab.version import __version__

LEDGER_COLUMNS: list[str] = [
    "step_index",
    "ts",
    "action",
    "symbol",
    "quantity",
    "fill_price",
    "fees",
    "cash_after",
    "holdings",
    "order_id",
    "status",
    "reason",
]
"""What ``RunHandle.ledger()`` returns, in order."""

REPRODUCED_COLUMNS: list[str] = [c for c in LEDGER_COLUMNS if c not in ("holdings", "order_id")]
"""Ledger columns two runs of the same decisions must share (order ids may differ: an
LLM provider's call ids; holdings follow from the rest)."""

_LIVE: dict[tuple[str, int], RunHandle] = {}
"""Runs executing in this process, by (store URL, run id)."""


class RunHandle:
    """A run of a model: control it while it runs, read it at any time."""

    def __init__(self, store: Store, run_id: int, bus: EventBus | None = None) -> None:
        self.store = store
        self.id = run_id
        self.bus = bus or EventBus()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._outcome: RunStatus | None = None
        self._failure: RunLostError | None = None

    def __repr__(self) -> str:
        row = self.info()
        return f"<Run {self.id}: {row['model']} #{row['run_number']} {row['status']}>"

    def info(self) -> dict[str, Any]:
        """The run's row (with its model's name) as a dict."""
        with self.store.session() as session:
            run = session.get(TradingRun, self.id)
            if run is None:
                raise NotFoundError(f"no run {self.id}")
            model = session.get(TradingModel, run.model_id)
            assert model is not None
            return {
                "id": run.id,
                "model": model.signature,
                "run_number": run.run_number,
                "status": run.status,
                "error": run.error,
                "mode": run.mode,
                "start": run.period_start,
                "end": run.period_end,
                "steps_done": run.steps_done,
                "steps_total": run.steps_total,
                "total_trades": run.total_trades,
                "final_value": run.final_value,
                "final_return": run.final_return,
                "max_drawdown": run.max_drawdown,
                "llm_calls": run.llm_calls,
                "llm_cost": run.llm_cost,
                "wasted_llm_calls": run.wasted_llm_calls,
                "wasted_llm_cost": run.wasted_llm_cost,
                "total_llm_cost": run.llm_cost + run.wasted_llm_cost,
                "worker": run.worker,
                "heartbeat_at": run.heartbeat_at,
                "live": live_holder(self.store.url, run) is not None,
                "snapshot": run.strategy_snapshot,
            }

    @property
    def status(self) -> str:
        return str(self.info()["status"])

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def subscribe(self, callback: Subscriber, replay: bool = True) -> Any:
        """Receive this run's events; returns an unsubscribe function."""
        return self.bus.subscribe(callback, replay=replay)

    def stop(self) -> None:
        """Ask the run to stop; it ends ``stopped`` before its next step."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run's thread ends (or ``timeout``); returns the status. When this
        process executed the run, that is the status it ended with (``failed`` also when
        the end could not be recorded), and an execution another process took over
        raises its :class:`~ttg_lab.store.leases.RunLostError`."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return self.status
        if self._failure is not None:
            raise self._failure
        return self._outcome or self.status

    def start_thread(self, executor: RunExecutor) -> None:
        self._thread = threading.Thread(
            target=self._execute, args=(executor,), name=f"ttg-run-{self.id}", daemon=True
        )
        self._thread.start()

    def run_here(self, executor: RunExecutor) -> None:
        """Execute in the calling thread; raises what a background run keeps for wait()."""
        self._execute(executor)
        self.wait()

    def _execute(self, executor: RunExecutor) -> None:
        try:
            self._outcome = executor.execute()
        except RunLostError as lost:  # kept for wait(): a background thread has nobody to tell
            self._failure = lost

    def ledger(self) -> pd.DataFrame:
        """Every action of the run in order."""
        return self._frame(
            select(LedgerEntry).where(LedgerEntry.run_id == self.id).order_by(LedgerEntry.id),
            LEDGER_COLUMNS,
        )

    def equity(self) -> pd.DataFrame:
        """The portfolio marked to market at each step's close."""
        return self._frame(
            select(RunStep).where(RunStep.run_id == self.id).order_by(RunStep.step_index),
            ["step_index", "ts", "cash", "equity", "holdings"],
        )

    def reasoning(self) -> pd.DataFrame:
        """The agent's reasoning entries in order."""
        return self._frame(
            select(ReasoningEntry)
            .where(ReasoningEntry.run_id == self.id)
            .order_by(ReasoningEntry.id),
            ["id", "step_index", "ts", "type", "content", "context", "order_ids"],
        )

    def _frame(self, query: Any, columns: list[str]) -> pd.DataFrame:
        with self.store.session() as session:
            rows = session.scalars(query).all()
            return pd.DataFrame(
                [{c: getattr(r, c) for c in columns} for r in rows], columns=columns
            )


class RunService:
    """Starts and resumes runs for a lab; remembers the ones this process executes.
    ``on_end`` is called when a run's end is recorded (the lab stores its metrics)."""

    def __init__(
        self, store: Store, models: ModelService, rules: RuleService, on_end: EndHook
    ) -> None:
        self.store = store
        self.models = models
        self.rules = rules
        self.on_end = on_end

    def start(
        self,
        model: int | str | ModelInfo,
        mode: str = "daily",
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        costs: str | CostModel | dict[str, Any] | None = None,
        fill: str = "open",
        seed: int = 0,
        background: bool = True,
        on_event: Subscriber | None = None,
        path: str = "chat",
        replay_from: int | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> RunHandle:
        """Record a new run of ``model`` and execute it (in a thread unless told not to)."""
        info = self.models.owned(model)
        check_path(info.ai_model_id, path)
        if replay_from is not None:
            self._check_replay_source(replay_from, info, path)
        if mode not in MODES:
            raise ValidationError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        interval = MODES[mode]
        market = get_market(info.market)
        cost_model = resolve_cost_model(costs)
        check_fill_policy(fill)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValidationError(f"seed must be a whole number, got {seed!r}")
        validate_agent(info.ai_model_id, info.parameters)  # validate before recording anything
        fingerprint = data_fingerprint(self.store, market.code, interval)
        index = price_index(self.store, market.code, interval, fingerprint)
        begin = parse_optional_date(start, "start", market.timezone) or index.calendar[0]
        finish = inclusive_end(
            parse_optional_date(end, "end", market.timezone) or index.calendar[-1]
        )
        if interval == "1d":
            begin = day_of(begin)  # a daily bar is named by its day, whatever the time given
        if finish < begin:
            raise ValidationError(f"end {finish:%Y-%m-%d} is before start {begin:%Y-%m-%d}")
        calendar = index.calendar_between(begin, finish)
        if not calendar:
            raise ValidationError(
                f"no {interval} bars for the {market.code} market between {begin:%Y-%m-%d} and "
                f"{finish:%Y-%m-%d}; data covers {index.calendar[0]:%Y-%m-%d}.."
                f"{index.calendar[-1]:%Y-%m-%d}"
            )
        tickers = info.tickers or [s for s in index.symbols if s != market.benchmark]
        model_config = {
            "name": info.name,
            "signature": info.signature,
            "market": info.market,
            "ai_model_id": info.ai_model_id,
            "parameters": info.parameters,
            "initial_cash": info.initial_cash,
            "tickers": info.tickers,
            "custom_rules": info.custom_rules,
            "custom_instructions": info.custom_instructions,
        }
        rules = self.rules.effective(info).to_list()
        if replay_from is not None:  # replay exactly what was recorded, not today's config
            source = RunHandle(self.store, replay_from).info()["snapshot"]
            model_config, tickers, rules = source["model"], source["tickers"], source["rules"]
        snapshot = {
            "model": model_config,
            "tickers": sorted(tickers),
            "rules": rules,
            "costs": cost_model.to_dict(),
            "fill": fill,
            "seed": seed,
            "interval": interval,
            "agent_path": path,
            "experiment": provenance or {},
            "replay_of": replay_from,
            "prompt_version": PROMPT_VERSION if path == "chat" else None,
            "data_fingerprint": fingerprint,
            "package_version": __version__,
        }
        setup = self._prepare(snapshot, mode, (calendar[0], calendar[-1]), "the run")
        lease = self._insert_run(info, mode, calendar, snapshot)
        return self._launch(setup, lease, background, on_event)

    def _insert_run(
        self, info: ModelInfo, mode: str, calendar: list[datetime], snapshot: dict[str, Any]
    ) -> Lease:
        """The new run's row, which is also this process's claim on it (attempt 0)."""
        me = worker_id()
        for _attempt in range(5):  # two processes may race for the same run number
            try:
                with self.store.session() as session:
                    last = session.scalar(
                        select(func.max(TradingRun.run_number)).where(
                            TradingRun.model_id == info.id
                        )
                    )
                    run = TradingRun(
                        model_id=info.id,
                        run_number=(last or 0) + 1,
                        status="running",
                        mode=mode,
                        period_start=calendar[0],
                        period_end=calendar[-1],
                        strategy_snapshot=snapshot,
                        steps_total=len(calendar),
                        worker=me,
                        heartbeat_at=utcnow(),
                        attempt=0,
                    )
                    session.add(run)
                    session.flush()
                    return Lease(self.store.url, run.id, me, 0)
            except IntegrityError:
                with self.store.session() as session:
                    if session.get(TradingModel, info.id) is None:
                        raise NotFoundError(
                            f"no model {info.signature!r}: it was deleted"
                        ) from None
        raise RunStateError(f"could not allocate a run number for model {info.signature}")

    def _check_replay_source(self, source_id: int, info: ModelInfo, path: str) -> None:
        if path != "chat":
            raise ValidationError("replay needs the chat path: the direct path makes no LLM calls")
        if check_run(self.store, self.models.user, source_id) != info.id:
            raise ValidationError(
                f"run {source_id} belongs to another model; replay it with its own"
            )

    def _prepare(
        self, snap: dict[str, Any], mode: str, period: tuple[datetime, datetime], what: str
    ) -> RunSetup:
        """Everything a run of snapshot ``snap`` needs, or the error that stops it (data
        changed or missing, no API key, nothing to replay...), before anything is written."""
        stale_after()  # a bad TTG_LAB_RUN_STALE_AFTER too: the run's heartbeat depends on it
        model = snap["model"]
        market = get_market(model["market"])
        interval = MODES[mode]
        fingerprint = data_fingerprint(self.store, market.code, interval)
        if fingerprint != snap["data_fingerprint"]:
            raise RunStateError(
                f"{what}: the {market.code} {interval} data changed since the run started "
                "(fingerprint differs); start a new run instead"
            )
        index = price_index(self.store, market.code, interval, fingerprint)
        return RunSetup(
            initial_cash=model["initial_cash"],
            calendar=index.calendar_between(*period),
            market=market,
            index=index,
            tickers=frozenset(snap["tickers"]),
            costs=resolve_cost_model(snap["costs"]),
            fill=snap["fill"],
            seed=snap["seed"],
            news=news_index(self.store),
            rules=RuleSet.from_list(snap["rules"]),
            agent=prepare_agent(
                self.store, model, snap.get("agent_path", "chat"), snap.get("replay_of")
            ),
        )

    def _launch(
        self, setup: RunSetup, lease: Lease, background: bool, on_event: Subscriber | None
    ) -> RunHandle:
        handle = RunHandle(self.store, lease.run_id)
        if on_event is not None:
            handle.subscribe(on_event)
        executor = RunExecutor(self.store, setup, lease, handle.bus, handle._stop, self.on_end)
        _LIVE[(self.store.url, lease.run_id)] = handle
        if background:
            handle.start_thread(executor)
        else:
            handle.run_here(executor)
        return handle

    def resume(
        self, run_id: int, background: bool = True, on_event: Subscriber | None = None
    ) -> RunHandle:
        """Continue a run from its last committed step (after a crash, stop or failure).

        A run another process still executes (its heartbeat fresh) is refused, and so is
        one that could not go on (data changed, API key missing): nothing is changed then.
        Otherwise the run is claimed in one conditional update, so of several processes
        resuming it at once exactly one runs it and the others are refused."""
        check_run(self.store, self.models.user, run_id, change=True)
        live = _LIVE.get((self.store.url, run_id))
        if live is not None and live.running:
            raise RunStateError(f"run {run_id} is running in this process")
        with self.store.session() as session:
            run = session.get(TradingRun, run_id)
            if run is None:
                raise NotFoundError(f"no run {run_id}")
            check_claimable(self.store.url, run)  # before preparing; the claim checks again
            snap, mode = dict(run.strategy_snapshot), run.mode
            period = (run.period_start, run.period_end)
        setup = self._prepare(snap, mode, period, f"run {run_id}")
        return self._launch(setup, claim(self.store, run_id), background, on_event)

    def get(self, run_id: int) -> RunHandle:
        """A handle on one of the user's runs (the live one if this process runs it)."""
        check_run(self.store, self.models.user, run_id)
        live = _LIVE.get((self.store.url, run_id))
        return live if live is not None else RunHandle(self.store, run_id)

    def frame(self, model: int | str | ModelInfo | None = None) -> pd.DataFrame:
        """Runs (of one model, or all) as a table, newest first."""
        query = visible_models(
            self.models.user, select(TradingRun, TradingModel.signature).join(TradingModel)
        )
        if model is not None:
            query = query.where(TradingRun.model_id == self.models.get(model).id)
        columns = [
            "id",
            "model",
            "run_number",
            "status",
            "mode",
            "start",
            "end",
            "steps",
            "trades",
            "final_value",
            "final_return",
            "max_drawdown",
            "error",
        ]
        with self.store.session() as session:
            rows = [
                [
                    r.id,
                    sig,
                    r.run_number,
                    r.status,
                    r.mode,
                    r.period_start,
                    r.period_end,
                    f"{r.steps_done}/{r.steps_total}",
                    r.total_trades,
                    r.final_value,
                    r.final_return,
                    r.max_drawdown,
                    r.error,
                ]
                for r, sig in session.execute(query.order_by(TradingRun.id.desc()))
            ]
        return pd.DataFrame(rows, columns=columns)


__all__ = ["RunEvent", "RunHandle", "RunService"]
