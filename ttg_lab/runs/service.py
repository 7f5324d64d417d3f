"""Starting and resuming runs.

``RunService.start`` records the run (its number per model and a snapshot of everything
that defines it), then executes it in a background thread so notebooks stay responsive;
``resume`` claims a run and continues it. Either returns a
:class:`~ttg_lab.runs.handle.RunHandle`, which stops it, waits for it, and reads what it
wrote.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from ttg_lab.agents.factory import check_path, prepare_agent, validate_agent
from ttg_lab.broker.costs import CostModel, resolve_cost_model
from ttg_lab.broker.fills import check_fill_policy
from ttg_lab.dates import day_of, inclusive_end, parse_optional_date
from ttg_lab.engine.events import Subscriber
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
from ttg_lab.runs.handle import RunHandle
from ttg_lab.runs.numbering import next_run_number, write_numbered
from ttg_lab.store.access import check_run, visible_models
from ttg_lab.store.database import Store
from ttg_lab.store.leases import (
    Lease,
    check_claimable,
    claim,
    stale_after,
    worker_id,
)
from ttg_lab.store.schema import (
    TradingModel,
    TradingRun,
    utcnow,
)
from ttg_lab.version import __version__

_LIVE: dict[tuple[str, int], RunHandle] = {}
"""Runs executing in this process, by (store URL, run id)."""


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

        def write(session: Session) -> Lease:
            run = TradingRun(
                model_id=info.id,
                run_number=next_run_number(session, info.id),
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

        return write_numbered(self.store, write, info.signature, info.id)

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


__all__ = ["RunService"]
