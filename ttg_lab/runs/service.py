"""Starting and resuming runs.

``RunService.start`` records the run (its number per model and a snapshot of everything
that defines it), then executes it in a background thread so notebooks stay responsive;
``resume`` claims a run and continues it. Either returns a
:class:`~ttg_lab.runs.handle.RunHandle`, which stops it, waits for it, and reads what it
wrote.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ttg_lab.agents.factory import check_path, prepare_agent, seeded, validate_agent
from ttg_lab.clock import WALL_CLOCK, Clock
from ttg_lab.dates import day_of, inclusive_end, parse_optional_date
from ttg_lab.engine.budget import Budget
from ttg_lab.engine.events import Subscriber
from ttg_lab.engine.loop import EndHook, RunExecutor, RunSetup
from ttg_lab.engine.snapshot import ForwardSpec, RunSnapshot
from ttg_lab.errors import NotFoundError, RunStateError, ValidationError
from ttg_lab.global_settings import read_settings
from ttg_lab.jsonsafe import json_safe
from ttg_lab.llm.prompt import prompt_version
from ttg_lab.market.asof import PriceIndex
from ttg_lab.market.bars import MODES
from ttg_lab.market.cache import data_fingerprint, price_index
from ttg_lab.market.markets import get_market
from ttg_lab.model_rules import RuleService
from ttg_lab.models import ModelInfo, ModelService
from ttg_lab.news.store import news_index
from ttg_lab.runs.experiments import check_repeats
from ttg_lab.runs.forward import (
    BarSource,
    ForwardFeed,
    bar_slots,
    default_provider,
    expected_bars,
    provider_source,
)
from ttg_lab.runs.handle import RunHandle
from ttg_lab.runs.numbering import next_run_number, write_numbered
from ttg_lab.runs.options import RunOptions
from ttg_lab.store.access import check_run, visible_models
from ttg_lab.store.database import Store
from ttg_lab.store.leases import (
    Lease,
    check_claimable,
    claim,
    stale_after,
    updated,
    worker_id,
)
from ttg_lab.store.schema import (
    RUN_STATUSES,
    ExperimentRow,
    TradingModel,
    TradingRun,
    utcnow,
)
from ttg_lab.text import refuse_secret
from ttg_lab.version import __version__

if TYPE_CHECKING:
    from ttg_lab.runs.estimate import Estimate

_LIVE: dict[tuple[str, int], RunHandle] = {}
"""Runs executing in this process, by (store URL, run id)."""


@dataclass(frozen=True)
class PlannedRepeats:
    """An experiment's repeats, checked and prepared before anything is written."""

    info: ModelInfo
    mode: str
    calendar: list[datetime]
    options: RunOptions  # the first repeat's (its seed is the experiment's)
    name: str
    snapshots: list[RunSnapshot]
    setups: list[RunSetup]


class RunService:
    """Starts and resumes runs for a lab; remembers the ones this process executes.
    ``on_end`` is called when a run's end is recorded (the lab stores its metrics)."""

    def __init__(
        self,
        store: Store,
        models: ModelService,
        rules: RuleService,
        on_end: EndHook,
        cache_dir: Path,
    ) -> None:
        self.store = store
        self.models = models
        self.rules = rules
        self.on_end = on_end
        self.cache_dir = cache_dir
        """Where forward runs' fetches keep the providers' raw answers."""

    def start(
        self,
        model: int | str | ModelInfo,
        mode: str = "daily",
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        options: RunOptions | None = None,
        background: bool = True,
        on_event: Subscriber | None = None,
        clock: Clock = WALL_CLOCK,
        source: BarSource | None = None,
    ) -> RunHandle:
        """Record a new run of ``model`` and execute it (in a thread unless told not to).
        A forward run waits on ``clock`` and polls ``source`` (its provider's bars through
        the fetch pipeline when None); neither is recorded."""
        options = options or RunOptions()
        info, calendar, snapshot = self.plan(model, mode, start, end, options, clock)
        period = (calendar[0], calendar[-1])
        setup = self._prepare(snapshot, period, "the run", clock=clock, source=source)
        lease = self._insert_run(info, mode, calendar, snapshot)
        return self._launch(setup, lease, background, on_event)

    def start_repeats(
        self,
        model: int | str | ModelInfo,
        mode: str,
        start: datetime | str | None,
        end: datetime | str | None,
        options: RunOptions,
        repeats: int,
        name: str = "",
        background: bool = True,
        on_event: Subscriber | None = None,
    ) -> tuple[int, list[RunHandle]]:
        """Record an experiment of ``repeats`` runs of ``model`` over one period and mode,
        seeds ``options.seed + i``, and execute them (each in its own thread unless told
        not to); returns the experiment's id and the runs' handles in repeat order. Every
        run is checked and prepared before anything is written."""
        planned = self._plan_repeats(model, mode, start, end, options, repeats, name)
        with self.store.session() as session:
            experiment_id = self._record_experiment(session, planned, {})
        return experiment_id, self._launch_repeats(planned, experiment_id, background, on_event)

    def start_gap(
        self,
        model: int | str | ModelInfo,
        mode: str,
        start: datetime | str | None,
        end: datetime | str | None,
        options: RunOptions,
        repeats: int,
        name: str = "",
        background: bool = True,
        on_event: Subscriber | None = None,
    ) -> tuple[int, list[RunHandle]]:
        """Record a memorisation gap: two experiments of ``repeats`` runs of ``model`` over
        one period and mode, seeds ``options.seed + i`` in both, one unmasked and one
        masked (so repeat ``i`` of the two differs only by masking), linked by the gap's
        id (the unmasked arm's experiment id, ``gap`` in both experiments' options), and
        execute them; returns the gap's id and the handles, unmasked arm first. Both arms
        are checked and prepared before anything is written."""
        if options.masked:
            raise ValidationError(
                "a memorisation gap runs both arms, unmasked and masked: give no masked=True"
            )
        arms = [
            self._plan_repeats(
                model, mode, start, end, replace(options, masked=masked), repeats, name
            )
            for masked in (False, True)
        ]
        with self.store.session() as session:
            gap_id = self._record_experiment(session, arms[0], {"arm": "unmasked"})
            masked_id = self._record_experiment(session, arms[1], {"gap": gap_id, "arm": "masked"})
            unmasked = session.get(ExperimentRow, gap_id)
            assert unmasked is not None  # written just now in this session
            unmasked.options = {**unmasked.options, "gap": gap_id}
        handles = self._launch_repeats(arms[0], gap_id, background, on_event)
        return gap_id, handles + self._launch_repeats(arms[1], masked_id, background, on_event)

    def _plan_repeats(
        self,
        model: int | str | ModelInfo,
        mode: str,
        start: datetime | str | None,
        end: datetime | str | None,
        options: RunOptions,
        repeats: int,
        name: str,
    ) -> PlannedRepeats:
        """An experiment's runs checked and prepared, with nothing written."""
        repeats = check_repeats(repeats)
        if not isinstance(name, str):
            raise ValidationError(f"an experiment's name must be text, got {name!r}")
        refuse_secret(name, "the experiment's name")
        if options.replay_from is not None:
            raise ValidationError("a replay reproduces one recorded run: it takes no repeats")
        if options.forward:
            raise ValidationError("a forward run trades bars as they come: it takes no repeats")
        plans = [
            self.plan(model, mode, start, end, replace(options, seed=options.seed + i))
            for i in range(repeats)
        ]
        info, calendar, _ = plans[0]
        snapshots = [snapshot for _, _, snapshot in plans]
        period = (calendar[0], calendar[-1])
        setups = [self._prepare(snap, period, "the run") for snap in snapshots]
        return PlannedRepeats(info, mode, calendar, options, name.strip(), snapshots, setups)

    def _record_experiment(
        self, session: Session, planned: PlannedRepeats, extra: dict[str, Any]
    ) -> int:
        """The experiment's row (its runs are recorded as they start); its id."""
        options = planned.options
        row = ExperimentRow(
            owner_id=self.models.user.id,
            model_id=planned.info.id,
            name=planned.name,
            repeats=len(planned.snapshots),
            mode=planned.mode,
            period_start=planned.calendar[0],
            period_end=planned.calendar[-1],
            seed=options.seed,
            options=json_safe(
                {
                    "costs": asdict(options.cost_model),
                    "fill": options.fill,
                    "path": options.path,
                    "masked": options.masked,
                    **extra,
                }
            ),
        )
        session.add(row)
        session.flush()
        return row.id

    def _launch_repeats(
        self,
        planned: PlannedRepeats,
        experiment_id: int,
        background: bool,
        on_event: Subscriber | None,
    ) -> list[RunHandle]:
        handles = []
        for setup, snap in zip(planned.setups, planned.snapshots, strict=True):
            # each repeat's row as it starts: one recorded long before it runs (the earlier
            # ones running in this thread) would look abandoned, its heartbeat not beating
            lease = self._insert_run(
                planned.info, planned.mode, planned.calendar, snap, experiment_id
            )
            handles.append(self._launch(setup, lease, background, on_event))
        return handles

    def plan(
        self,
        model: int | str | ModelInfo,
        mode: str,
        start: datetime | str | None,
        end: datetime | str | None,
        options: RunOptions,
        clock: Clock = WALL_CLOCK,
    ) -> tuple[ModelInfo, list[datetime], RunSnapshot]:
        """What a new run of ``model`` would be, checked and with nothing written: the
        model, its decision steps' clocks (the calendar; a forward run's: the bars the
        market's calendar expects from ``clock``'s now through its ``until``, or the next
        one when open-ended) and its snapshot. A run and its estimate
        (:mod:`ttg_lab.runs.estimate`) both start here."""
        info = self.models.owned(model)
        check_path(info.ai_model_id, options.path)
        if options.replay_from is not None:
            self._check_replay_source(options.replay_from, info)
        if mode not in MODES:
            raise ValidationError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        interval = MODES[mode]
        market = get_market(info.market)
        validate_agent(info.ai_model_id, info.parameters)  # validate before recording anything
        fingerprint = data_fingerprint(self.store, market.code, interval)
        index = price_index(self.store, market.code, interval, fingerprint)
        forward = self._forward_spec(options, interval, market.code, start, end, clock)
        if forward is not None:
            calendar = expected_bars(
                market,
                interval,
                forward.started_at.replace(tzinfo=UTC),
                forward.until,
                None,
                bar_slots(index.calendar, market),
            )
            if not calendar:
                raise ValidationError(
                    f"until {forward.until} is before the first {interval} bar of the "
                    f"{market.code} market after {forward.started_at:%Y-%m-%d %H:%M} UTC"
                )
        else:
            calendar = self._calendar(index, market.timezone, interval, start, end)
        tickers = info.tickers or [s for s in index.symbols if s != market.benchmark]
        model_config = info.config()
        rules = self.rules.effective(info)
        version = prompt_version(model_config.parameters) if options.path == "chat" else None
        mask_seed = options.seed if options.masked else None
        if options.replay_from is not None:  # replay exactly what was recorded, not today's
            source = self.snapshot(options.replay_from)
            model_config, tickers, rules = source.model, list(source.tickers), source.rules
            version = source.prompt_version  # its prompts, as they were rendered then
            if options.masked and not source.masked:
                raise ValidationError(
                    f"run {options.replay_from} was not masked: its replay cannot be (masked=True)"
                )
            mask_seed = source.mask_seed  # it sees what the recorded run saw
        if options.replay_from is None:  # the run's seed reaches an LLM's requests too
            model_config = seeded(model_config, options.seed)
        snapshot = RunSnapshot(
            model=model_config,
            tickers=tuple(sorted(tickers)),
            rules=rules,
            costs=options.cost_model,
            fill=options.fill,
            seed=options.seed,
            interval=interval,
            agent_path="direct" if options.path == "direct" else "chat",
            experiment=options.provenance,
            budget=options.budget.over(Budget.from_settings(read_settings(self.store))),
            replay_of=options.replay_from,
            prompt_version=version,
            data_fingerprint=fingerprint,
            package_version=__version__,
            forward=forward,
            mask_seed=mask_seed,
        )
        snapshot.mask(calendar[-1].date())  # a masked period must end before 2100, shifted
        return info, calendar, snapshot

    @staticmethod
    def _calendar(
        index: PriceIndex,
        timezone: str,
        interval: str,
        start: datetime | str | None,
        end: datetime | str | None,
    ) -> list[datetime]:
        """A backtest's steps: the data's bars between ``start`` and ``end`` (its whole
        range by default)."""
        begin = parse_optional_date(start, "start", timezone) or index.calendar[0]
        finish = inclusive_end(parse_optional_date(end, "end", timezone) or index.calendar[-1])
        if interval == "1d":
            begin = day_of(begin)  # a daily bar is named by its day, whatever the time given
        if finish < begin:
            raise ValidationError(f"end {finish:%Y-%m-%d} is before start {begin:%Y-%m-%d}")
        calendar = index.calendar_between(begin, finish)
        if not calendar:
            raise ValidationError(
                f"no {interval} bars for the {index.market} market between {begin:%Y-%m-%d} "
                f"and {finish:%Y-%m-%d}; data covers {index.calendar[0]:%Y-%m-%d}.."
                f"{index.calendar[-1]:%Y-%m-%d}"
            )
        return calendar

    def _forward_spec(
        self,
        options: RunOptions,
        interval: str,
        market: str,
        start: datetime | str | None,
        end: datetime | str | None,
        clock: Clock,
    ) -> ForwardSpec | None:
        """A forward run's spec from its options (None for a backtest), created now."""
        if not options.forward:
            return None
        if start is not None or end is not None:
            raise ValidationError(
                f"a forward run starts at the next bar and ends on its until day; got "
                f"start={start!r}, end={end!r} (give until=YYYY-MM-DD instead)"
            )
        return ForwardSpec(
            provider=options.provider or default_provider(self.store, market, interval),
            started_at=clock.now().astimezone(UTC).replace(tzinfo=None),
            until=options.until_day,
            provider_url=options.provider_url,
            missed=options.missed_bars,
        )

    def estimate(
        self,
        model: int | str | ModelInfo,
        mode: str,
        start: datetime | str | None,
        end: datetime | str | None,
        options: RunOptions,
    ) -> Estimate:
        """What the run :meth:`start` would make spends on its LLM, predicted from its
        :meth:`plan` (see :mod:`ttg_lab.runs.estimate`); nothing is written."""
        # Loaded here: an estimate renders the chat prompt and tool schemas (LangChain, MCP),
        # which a direct run never needs.
        from ttg_lab.runs.estimate import estimate_run

        info, calendar, snapshot = self.plan(model, mode, start, end, options)
        return estimate_run(self.store, info, calendar, snapshot)

    def snapshot(self, run_id: int) -> RunSnapshot:
        """The snapshot of run ``run_id`` (not checked: callers check the run first)."""
        with self.store.session() as session:
            run = session.get(TradingRun, run_id)
            if run is None:
                raise NotFoundError(f"no run {run_id}")
            return RunSnapshot.from_json(run.strategy_snapshot)

    def _insert_run(
        self,
        info: ModelInfo,
        mode: str,
        calendar: list[datetime],
        snapshot: RunSnapshot,
        experiment_id: int | None = None,
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
                strategy_snapshot=snapshot.to_json(),
                steps_total=len(calendar),
                worker=me,
                heartbeat_at=utcnow(),
                attempt=0,
                experiment_id=experiment_id,
                forward=snapshot.forward is not None,
                masked=snapshot.masked,
            )
            session.add(run)
            session.flush()
            return Lease(self.store.url, run.id, me, 0)

        return write_numbered(self.store, write, info.signature, info.id)

    def _check_replay_source(self, source_id: int, info: ModelInfo) -> None:
        if check_run(self.store, self.models.user, source_id) != info.id:
            raise ValidationError(
                f"run {source_id} belongs to another model; replay it with its own"
            )

    def _prepare(
        self,
        snap: RunSnapshot,
        period: tuple[datetime, datetime],
        what: str,
        *,
        clock: Clock = WALL_CLOCK,
        source: BarSource | None = None,
        run_id: int | None = None,
    ) -> RunSetup:
        """Everything a run of snapshot ``snap`` needs, or the error that stops it (data
        changed or missing, no API key, nothing to replay...), before anything is written.
        A forward run's data grows: instead of its fingerprint, the bars its last committed
        step saw (of run ``run_id``, when resumed) must be unchanged."""
        stale_after()  # a bad TTG_LAB_RUN_STALE_AFTER too: the run's heartbeat depends on it
        market, interval = snap.market, snap.interval
        feed: ForwardFeed | None = None
        if snap.forward is not None:
            if source is None:
                source = provider_source(self.store, snap, clock, self.cache_dir)
            feed = ForwardFeed(self.store, snap, source, clock)
            if run_id is not None:
                feed.check_seen(run_id)
            index = feed.empty_index()
            calendar = feed.expected()
        else:
            if data_fingerprint(self.store, market.code, interval) != snap.data_fingerprint:
                raise RunStateError(
                    f"{what}: the {market.code} {interval} data changed since the run started "
                    "(fingerprint differs); start a new run instead"
                )
            index = snap.index(self.store)
            calendar = index.calendar_between(*period)
        return RunSetup(
            snapshot=snap,
            index=index,
            calendar=calendar,
            news=news_index(self.store),
            agent=prepare_agent(
                self.store,
                snap.model,
                snap.agent_path,
                snap.replay_of,
                snap.budget,
                snap.prompt_version,
            ),
            feed=feed,
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
        self,
        run_id: int,
        background: bool = True,
        on_event: Subscriber | None = None,
        max_cost_usd: float | None = None,
        max_tokens: int | None = None,
        clock: Clock = WALL_CLOCK,
        source: BarSource | None = None,
    ) -> RunHandle:
        """Continue a run from its last committed step (after a crash, stop, budget stop or
        failure); ``max_cost_usd``/``max_tokens`` given replace the run's caps (recorded in
        its snapshot once it is claimed). A forward run first catches up the bars that
        came while it was down (see :mod:`ttg_lab.runs.forward`), on ``clock`` and
        ``source`` as :meth:`start` takes them.

        A run another process still executes (its heartbeat fresh) is refused, and so is
        one that could not go on (data changed, API key missing, a bad cap): nothing is
        changed then. Otherwise the run is claimed in one conditional update, so of
        several processes resuming it at once exactly one runs it and the others are
        refused."""
        check_run(self.store, self.models.user, run_id, change=True)
        caps = Budget(max_cost_usd, max_tokens)
        live = _LIVE.get((self.store.url, run_id))
        if live is not None and live.running:
            raise RunStateError(f"run {run_id} is running in this process")
        with self.store.session() as session:
            run = session.get(TradingRun, run_id)
            if run is None:
                raise NotFoundError(f"no run {run_id}")
            check_claimable(self.store.url, run)  # before preparing; the claim checks again
            snap = RunSnapshot.from_json(run.strategy_snapshot)
            period = (run.period_start, run.period_end)
        snap = replace(snap, budget=caps.over(snap.budget))
        setup = self._prepare(
            snap, period, f"run {run_id}", clock=clock, source=source, run_id=run_id
        )
        lease = claim(self.store, run_id)
        if caps.capped:
            with self.store.session() as session:
                held = update(TradingRun).where(lease.held())
                if updated(session, held.values(strategy_snapshot=snap.to_json())) != 1:
                    raise lease.lost(session) or RunStateError(f"run {run_id} vanished")
        return self._launch(setup, lease, background, on_event)

    def get(self, run_id: int) -> RunHandle:
        """A handle on one of the user's runs (the live one if this process runs it)."""
        check_run(self.store, self.models.user, run_id)
        return self.handle(run_id)

    def handle(self, run_id: int) -> RunHandle:
        """A handle on run ``run_id``, the live one if this process runs it (not checked:
        for runs the caller listed through :meth:`frame`)."""
        live = _LIVE.get((self.store.url, run_id))
        return live if live is not None else RunHandle(self.store, run_id)

    def frame(
        self,
        model: int | str | ModelInfo | None = None,
        status: str | None = None,
        experiment: int | None = None,
    ) -> pd.DataFrame:
        """Runs (of one model, or all; with one status, or any; of one experiment, or
        any) as a table, newest first."""
        query = visible_models(
            self.models.user, select(TradingRun, TradingModel.signature).join(TradingModel)
        )
        if experiment is not None:
            query = query.where(TradingRun.experiment_id == experiment)
        if model is not None:
            query = query.where(TradingRun.model_id == self.models.get(model).id)
        if status is not None:
            if status not in RUN_STATUSES:
                raise ValidationError(
                    f"run status must be one of {', '.join(RUN_STATUSES)}, got {status!r}"
                )
            query = query.where(TradingRun.status == status)
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
            "experiment",
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
                    r.experiment_id,
                    r.error,
                ]
                for r, sig in session.execute(query.order_by(TradingRun.id.desc()))
            ]
        return pd.DataFrame(rows, columns=columns)


__all__ = ["RunService"]
