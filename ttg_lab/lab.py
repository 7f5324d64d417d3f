"""The lab: one object that notebooks, widgets, the CLI and batches all talk to.

lab = ttg_lab.open()
model = lab.models.create("my momentum", ai_model_id="baseline/momentum")
run = lab.start_run(model, mode="daily", start="2025-06-10", end="2025-10-30")
run.wait(); run.ledger()
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import pandas as pd

from ttg_lab import users
from ttg_lab.agents.policy import Policy, register_policy
from ttg_lab.audit import MaskingAudit, audit_masking
from ttg_lab.clock import WALL_CLOCK, Clock
from ttg_lab.config import Settings, resolve_settings
from ttg_lab.dates import inclusive_end, parse_date
from ttg_lab.diff import RunDiff, diff
from ttg_lab.engine.events import Subscriber
from ttg_lab.errors import NotFoundError, PermissionDeniedError, ValidationError
from ttg_lab.global_settings import GlobalSettings
from ttg_lab.leaderboard import leaderboard
from ttg_lab.market import loader
from ttg_lab.market.bars import BarLabel
from ttg_lab.market.fetch import FetchProgress, FetchReport
from ttg_lab.mcp_services.manager import ServiceManager
from ttg_lab.memorisation import MemorisationGap
from ttg_lab.metrics.gap import GapResult
from ttg_lab.metrics.stored import store_metrics
from ttg_lab.model_rules import RuleService
from ttg_lab.models import ModelInfo, ModelService
from ttg_lab.news.store import import_news_file, load_shipped_news
from ttg_lab.profiles import TradingProfile
from ttg_lab.run import Experiment, Run, RunList
from ttg_lab.runs.experiments import (
    ExperimentInfo,
    GapInfo,
    list_experiments,
    list_gaps,
    read_experiment,
    read_gap,
)
from ttg_lab.runs.forward import BarSource
from ttg_lab.runs.handle import RunHandle
from ttg_lab.runs.options import RunOptions
from ttg_lab.runs.service import RunService
from ttg_lab.store.access import (
    LEADERBOARD_PUBLIC,
    is_admin,
    leaderboard_owners,
    require_admin,
)
from ttg_lab.store.database import Store
from ttg_lab.store.schema import User
from ttg_lab.text import refuse_secrets
from ttg_lab.users import ensure_local_user

if TYPE_CHECKING:
    from ttg_lab.analyst.analyst import Analyst
    from ttg_lab.news.fetch import NewsFetchReport
    from ttg_lab.runs.estimate import Estimate


class DataAPI:
    """Market data in the store: list datasets, load files, fetch from providers."""

    def __init__(self, store: Store, config: Settings, user: User | None = None) -> None:
        self.store = store
        self.config = config
        self.user = user

    def list(self) -> pd.DataFrame:
        return loader.list_datasets(self.store)

    def _admin(self, action: str) -> User:
        if self.user is None:
            raise PermissionDeniedError(f"{action} needs a signed-in admin")
        require_admin(self.user, action)
        return self.user

    def load(
        self,
        path: str,
        market: str,
        format: str = "auto",
        name: str | None = None,
        label: BarLabel = "start",
        replace: bool = False,
    ) -> loader.MergeResult:
        """Merge a price file (Alpha Vantage JSON, AI-Trader JSONL, CSV) into the store
        (admins: market data is shared by every user). New bars are added, identical ones
        skipped; bars that differ from the stored ones refuse the load with a report
        (:class:`~ttg_lab.market.loader.BarConflictError`) unless ``replace``. ``label``:
        whether the file stamps intraday bars by their ``start`` or their ``end``."""
        self._admin("loading market data")
        refuse_secrets({"path": str(path), "name": name or ""}, "data load")  # both are kept
        return loader.load_file(
            self.store, path, market, format=format, name=name, label=label, replace=replace
        )

    def load_shipped(self, names: builtins.list[str] | None = None) -> dict[str, int]:
        """Load the shipped market data, news corpus and AI-Trader runs (skipping what is
        loaded already). The runs need every market's data: they load when ``names`` is None."""
        owner = self._admin("loading the shipped data")
        loaded = loader.load_shipped(self.store, self.config.data_dir, names)
        loaded["news"] = load_shipped_news(self.store, self.config.data_dir)
        if names is None:
            from ttg_lab.importers.shipped_runs import load_shipped_runs

            loaded["aitrader_runs"] = load_shipped_runs(self.store, self.config.data_dir, owner.id)
        return loaded

    def load_news(self, path: str, format: str = "auto") -> int:
        """Import dated news (Alpha Vantage JSON, AI-Trader logs, JSONL) for the search tool."""
        self._admin("loading news")
        refuse_secrets({"path": str(path)}, "news load")
        return import_news_file(self.store, path, format)

    def fetch_news(
        self,
        symbols: Sequence[str] = (),
        start: object = None,
        end: object = None,
        provider: str = "alphavantage",
        base_url: str | None = None,
        *,
        clock: Clock = WALL_CLOCK,
    ) -> NewsFetchReport:
        """Fetch the news about ``symbols`` (none: all news) published from ``start`` to
        ``end`` (UTC days; default the 30 days to today) into the search tool's store
        (admins): publish times kept in UTC, undated items stored and never served, known
        URLs skipped. Paced and cached like bar fetches (one quota)."""
        from ttg_lab.market.fetch import paced_sender
        from ttg_lab.market.providers import make_provider
        from ttg_lab.market.providers.alphavantage import AlphaVantage
        from ttg_lab.news.fetch import fetch_news

        self._admin("fetching news")
        refuse_secrets({"provider": provider, "base_url": base_url or ""}, "news fetch")
        source = make_provider(provider, base_url)
        if not isinstance(source, AlphaVantage):
            raise ValidationError(f"{provider} serves no news; alphavantage does")
        last = (
            clock.now().replace(tzinfo=None)
            if end is None
            else inclusive_end(parse_date(end, "end of the news fetch", "UTC"))
        )
        first = (
            last - timedelta(days=30)
            if start is None
            else parse_date(start, "start of the news fetch", "UTC")
        )
        send = paced_sender(source, self.cache_dir, clock=clock)
        return fetch_news(self.store, source, list(symbols), first, last, send=send)

    @property
    def cache_dir(self) -> Path:
        """Where fetched answers and the providers' rate-limit counts are kept."""
        return self.config.data_dir / "cache"

    def fetch(
        self,
        provider: str,
        market: str,
        symbols: Sequence[str] | None = None,
        universe: str | None = None,
        interval: str = "1d",
        start: object = None,
        end: object = None,
        base_url: str | None = None,
        replace: bool = False,
        on_progress: Callable[[FetchProgress], None] | None = None,
        *,
        clock: Clock = WALL_CLOCK,
        stop: threading.Event | None = None,
    ) -> FetchReport:
        """Fetch bars from ``provider`` (``alphavantage``, ``ccxt:binance``...) for
        ``symbols`` or a ``universe`` (``nasdaq100``), days ``start``..``end`` (default: the
        30 days to today), and merge the complete ones (admins). See
        :mod:`ttg_lab.market.fetch`; ``clock`` and ``stop`` are for tests and faces."""
        from ttg_lab.market.fetch import fetch_bars, fetch_period
        from ttg_lab.market.providers import make_provider
        from ttg_lab.market.universes import universe_symbols

        self._admin("fetching market data")
        refuse_secrets({"provider": provider, "base_url": base_url or ""}, "data fetch")
        if (symbols is None) == (universe is None):
            raise ValidationError("give either symbols or a universe to fetch")
        chosen = (
            universe_symbols(universe, market, self.config.data_dir)
            if universe is not None
            else symbols
        )
        first, last = fetch_period(market, start, end, clock)
        return fetch_bars(
            self.store,
            make_provider(provider, base_url),
            market,
            chosen or [],
            interval,
            first,
            last,
            cache_dir=self.cache_dir,
            clock=clock,
            on_progress=on_progress,
            replace=replace,
            stop=stop,
        )

    def update(
        self,
        provider: str | None = None,
        base_url: str | None = None,
        on_progress: Callable[[FetchProgress], None] | None = None,
        *,
        clock: Clock = WALL_CLOCK,
        stop: threading.Event | None = None,
    ) -> builtins.list[FetchReport]:
        """Bring every dataset fetched from a provider (or from ``provider`` only) up to
        its last complete bar (admins); ``base_url`` points ``provider`` elsewhere."""
        from ttg_lab.market.fetch import update_datasets
        from ttg_lab.market.providers import make_provider

        self._admin("updating market data")
        refuse_secrets({"base_url": base_url or ""}, "data update")
        if base_url is not None and provider is None:
            raise ValidationError("a base URL needs the provider it is for (provider=...)")
        return update_datasets(
            self.store,
            lambda name: make_provider(name, base_url if name == provider else None),
            cache_dir=self.cache_dir,
            provider=provider,
            clock=clock,
            on_progress=on_progress,
            stop=stop,
        )


class UsersAPI:
    """Users, roles, sign-ups and the allow-list. Everything but ``sign_up`` and ``me``
    is for admins; an ordinary user gets a PermissionDeniedError naming the action."""

    def __init__(self, store: Store, user: User) -> None:
        self.store = store
        self.user = user

    def me(self) -> dict[str, Any]:
        u = self.user
        return {"username": u.username, "email": u.email, "role": u.role, "admin": is_admin(u)}

    def sign_up(self, email: str, display_name: str, username: str | None = None) -> User:
        return users.sign_up(self.store, email, display_name, username)

    def list(self) -> pd.DataFrame:
        return pd.DataFrame(users.list_users(self.store, self.user))

    def pending(self) -> pd.DataFrame:
        """Sign-ups waiting for approval."""
        frame = self.list()
        return frame[~frame["approved"].astype(bool)].reset_index(drop=True)

    def add(
        self, email: str, display_name: str, role: str = "user", username: str | None = None
    ) -> User:
        return users.add_user(self.store, self.user, email, display_name, role, username)

    def approve(self, name: str, role: str | None = None) -> User:
        return users.approve(self.store, self.user, name, role)

    def reject(self, name: str) -> None:
        users.reject(self.store, self.user, name)

    def set_role(self, name: str, role: str) -> None:
        users.set_role(self.store, self.user, name, role)

    def allow(self, pattern: str, role: str = "user") -> None:
        """Allow-list an email or ``@domain``: their sign-ups are approved at once."""
        users.allow_signups(self.store, self.user, pattern, role)

    def disallow(self, pattern: str) -> None:
        users.disallow_signups(self.store, self.user, pattern)

    def allow_list(self) -> pd.DataFrame:
        return pd.DataFrame(users.allow_list(self.store, self.user))

    def db_login(self, name: str, password: str) -> str:
        """PostgreSQL: a login role for user ``name`` limited by row-level security to
        their own work; returns its connection URL."""
        return users.create_db_login(self.store, self.user, name, password)


class Lab:
    """A store and what works on it (models, rules, runs, data, users), acting as one
    user: an ordinary user sees and changes only their own models and runs, an admin
    everything."""

    def __init__(self, config: Settings, store: Store, user: User) -> None:
        self.config = config
        """Where the lab keeps its store, data, reports and state (from the environment)."""
        self.store = store
        self.user = user
        self.models = ModelService(store, user)
        self.data = DataAPI(store, config, user)
        self.rules = RuleService(store, self.models, user)
        self.settings = GlobalSettings(store, user)
        self.profile = TradingProfile(store, user)
        self.users = UsersAPI(store, user)
        self._runs = RunService(
            store, self.models, self.rules, store_metrics, config.data_dir / "cache"
        )

    def __repr__(self) -> str:
        url = self.store.engine.url.render_as_string(hide_password=True)
        return f"<Lab {url} as {self.user.email}>"

    def init(self, load_data: bool = True) -> dict[str, int]:
        """Create the schema, the local admin and load the shipped market data (idempotent;
        loading is for admins)."""
        self.store.migrate()
        ensure_local_user(self.store)
        return self.data.load_shipped() if load_data else {}

    @overload
    def start_run(
        self,
        model: int | str | ModelInfo | type[Policy],
        mode: str = ...,
        start: datetime | str | None = ...,
        end: datetime | str | None = ...,
        *,
        background: bool = ...,
        on_event: Subscriber | None = ...,
        clock: Clock | None = ...,
        source: BarSource | None = ...,
        repeats: None = ...,
        name: str = ...,
        **options: Any,
    ) -> Run: ...

    @overload
    def start_run(
        self,
        model: int | str | ModelInfo | type[Policy],
        mode: str = ...,
        start: datetime | str | None = ...,
        end: datetime | str | None = ...,
        *,
        background: bool = ...,
        on_event: Subscriber | None = ...,
        clock: Clock | None = ...,
        source: BarSource | None = ...,
        repeats: int,
        name: str = ...,
        **options: Any,
    ) -> Experiment: ...

    def start_run(
        self,
        model: int | str | ModelInfo | type[Policy],
        mode: str = "daily",
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        *,
        background: bool = True,
        on_event: Subscriber | None = None,
        clock: Clock | None = None,
        source: BarSource | None = None,
        repeats: int | None = None,
        name: str = "",
        **options: Any,
    ) -> Run | Experiment:
        """Start a run of ``model`` over ``start``..``end`` (whole data range by default)
        and return its :class:`~ttg_lab.run.Run`; with ``repeats=N`` (1 to 100) start N
        runs of it over the same period and mode, seeds ``seed + 0 .. seed + N-1``,
        grouped as one experiment (called ``name``), and return the
        :class:`~ttg_lab.run.Experiment`.

        ``options`` are :class:`~ttg_lab.runs.options.RunOptions` (``costs``, ``fill``,
        ``seed``, ``path``, ``provenance``, ``replay_from``), checked before anything is
        written. ``background=False`` runs in this thread (repeats one after another);
        ``on_event`` receives the runs' events.

        ``forward=True`` (with ``until``, ``provider``, ``provider_url``, ``missed``) trades
        forward from the next bar as the provider releases them, on the wall clock (or
        ``clock``; ``source`` replaces the provider's bars: both for tests, not recorded);
        see :mod:`ttg_lab.runs.forward`. ``masked=True`` (chat path) masks what the model
        sees; see :mod:`ttg_lab.market.masking`.
        """
        run_options = RunOptions.from_kwargs(options)
        if isinstance(model, type):
            model = self.policy_model(model)
        if repeats is None:
            handle = self._runs.start(
                model,
                mode,
                start,
                end,
                run_options,
                background,
                on_event,
                clock or WALL_CLOCK,
                source,
            )
            return self._run(handle)
        experiment_id, _ = self._runs.start_repeats(
            model, mode, start, end, run_options, repeats, name, background, on_event
        )
        return self.experiment(experiment_id)

    def experiment(self, experiment_id: int) -> Experiment:
        """One of the user's experiments (raises NotFoundError for any other id)."""
        return self._experiment(read_experiment(self.store, self.user, experiment_id))

    def experiments(self) -> builtins.list[Experiment]:
        """The user's experiments, newest first."""
        return [self._experiment(info) for info in list_experiments(self.store, self.user)]

    def _experiment(self, info: ExperimentInfo) -> Experiment:
        runs = [self._run(self._runs.handle(i)) for i in info.run_ids]
        table = self._runs.frame(experiment=info.id)
        return Experiment(info, RunList(runs, table.iloc[::-1].reset_index(drop=True)))

    def memorisation_gap(
        self,
        model: int | str | ModelInfo | type[Policy],
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        mode: str = "daily",
        *,
        repeats: int = 3,
        name: str = "",
        background: bool = True,
        on_event: Subscriber | None = None,
        **options: Any,
    ) -> MemorisationGap:
        """Start a memorisation gap: ``repeats`` runs of ``model`` over ``start``..``end``
        unmasked and ``repeats`` masked (seeds ``seed + 0 .. seed + repeats - 1`` in both
        arms, so run ``i`` of one differs from run ``i`` of the other only by masking),
        two experiments linked as one gap; ``options`` as :meth:`start_run` takes them
        (not ``masked``: the gap runs both). Both arms are checked before anything is
        written. ``.result()`` of the returned gap is unmasked - masked in return and
        Sharpe with an interval and a verdict, a lower bound (see
        :mod:`ttg_lab.metrics.gap`)."""
        run_options = RunOptions.from_kwargs(options)
        if isinstance(model, type):
            model = self.policy_model(model)
        gap_id, _ = self._runs.start_gap(
            model, mode, start, end, run_options, repeats, name, background, on_event
        )
        return self.gap(gap_id)

    def gap(self, gap_id: int) -> MemorisationGap:
        """One of the user's memorisation gaps (NotFoundError for any other id)."""
        return self._gap(read_gap(self.store, self.user, gap_id))

    def gaps(self) -> builtins.list[MemorisationGap]:
        """The user's memorisation gaps, newest first."""
        return [self._gap(info) for info in list_gaps(self.store, self.user)]

    def memorisation_gap_result(self, gap_id: int) -> GapResult:
        """The statistics of one of the user's memorisation gaps (a lower bound)."""
        return self.gap(gap_id).result()

    def _gap(self, info: GapInfo) -> MemorisationGap:
        arms = (self._experiment(info.unmasked), self._experiment(info.masked))
        return MemorisationGap(self.store, info, *arms)

    def estimate(
        self,
        model: int | str | ModelInfo,
        mode: str = "daily",
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        **options: Any,
    ) -> Estimate:
        """What a run of ``model`` with these arguments (those of :meth:`start_run`) would
        spend on its LLM: calls, prompt and completion tokens and cost in USD, each with its
        basis, and whether that passes the run's caps (see :mod:`ttg_lab.runs.estimate`).
        Nothing is run or written."""
        return self._runs.estimate(model, mode, start, end, RunOptions.from_kwargs(options))

    def policy_model(self, policy: type[Policy]) -> ModelInfo:
        """The model that runs ``policy`` (a :class:`~ttg_lab.agents.policy.Policy`
        subclass): registered as ``policy/<class name>`` and kept as a model of that
        name, created on first use and reused after."""
        ai_model_id = register_policy(policy.__name__, policy)
        try:
            found = self.models.owned(policy.__name__)
        except NotFoundError:
            return self.models.create(policy.__name__, ai_model_id=ai_model_id)
        if found.ai_model_id != ai_model_id:
            raise ValidationError(
                f"model {policy.__name__!r} runs {found.ai_model_id}, not {ai_model_id}; "
                "rename the policy class or the model"
            )
        return found

    def run(self, run_id: int) -> Run:
        """One of the user's runs (raises NotFoundError for any other id)."""
        return self._run(self._runs.get(run_id))

    def diff(self, run_a: int, run_b: int) -> RunDiff:
        """Where two of the user's comparable runs (same market, mode, period) differ, step
        by step, and the P&L difference their differing decisions explain, replayed
        counterfactually (see :mod:`ttg_lab.diff`)."""
        return diff(self.store, self.run(run_a).id, self.run(run_b).id)

    def audit_masking(self, run_id: int) -> MaskingAudit:
        """Every real ticker, company name, date and unscaled price found in what one of
        the user's masked runs showed its model or the model wrote (its recorded calls;
        see :mod:`ttg_lab.audit`); ``.clean`` when none."""
        return audit_masking(self.store, self.user, run_id)

    def _run(self, handle: RunHandle) -> Run:
        return Run(self._runs, handle, self.config.reports_dir)

    def leaderboard(
        self,
        market: str | None = None,
        mode: str | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        sort: str = "sharpe",
        training_apart: bool = True,
        across: bool | str | Iterable[str] = False,
        snooping: bool = False,
        masked_apart: bool = True,
    ) -> pd.DataFrame:
        """Models ranked by their runs' metrics, with intervals and the benchmark verdict;
        runs inside their model's training window (and of unknown cutoff) ranked apart
        unless ``training_apart`` is False, masked runs apart from unmasked ones unless
        ``masked_apart`` is False (with the ``memorisation_gap`` of a model that has
        one). Rows rank, and their p-values are corrected
        (Holm) and Sharpe ratios deflated, only within their market, mode and period unless
        ``across`` names what to rank across (``"markets,modes"``; True: all); ``snooping``
        adds each group's SPA and StepM against buy-and-hold (see
        :func:`ttg_lab.leaderboard.leaderboard`). An ordinary user's board ranks their own
        models, or every model (read-only) when the global setting ``leaderboard.public``
        is true."""
        public = bool(self.settings.get(LEADERBOARD_PUBLIC, False))
        owners = leaderboard_owners(self.user, public)
        return leaderboard(
            self.store,
            market,
            mode,
            start,
            end,
            sort,
            owners,
            training_apart=training_apart,
            across=across,
            snooping=snooping,
            masked_apart=masked_apart,
        )

    def analyst(
        self, run_id: int, model: str | None = None, parameters: dict[str, Any] | None = None
    ) -> Analyst:
        """An analyst conversation about a run: an LLM when ``model`` (or the global setting
        ``analyst.ai_model_id``) names one, the offline analyst otherwise."""
        from ttg_lab.analyst.analyst import Analyst  # lazily: it loads langchain

        return Analyst(self, run_id, model, parameters)  # its tools check who may see the run

    def runs(
        self, model: int | str | ModelInfo | None = None, status: str | None = None
    ) -> RunList:
        """The user's runs (of one model, or all; with one status, or any), newest first;
        ``.table()`` shows them as a DataFrame."""
        table = self._runs.frame(model, status)
        return RunList([self._run(self._runs.handle(int(i))) for i in table["id"]], table)

    @property
    def mcp(self) -> ServiceManager:
        """Start, stop and check the MCP services (Math, Search, Trade, Price) over HTTP."""
        return ServiceManager(self.config, self.user.username)

    def close(self) -> None:
        self.store.dispose()


def open(db_url: str | None = None, init: bool = True, user: str | None = None) -> Lab:
    """Open the lab on ``db_url`` (default: ``TTG_LAB_DB_URL`` or ``data/ttg_lab.db``)
    acting as ``user`` (see :func:`ttg_lab.users.resolve_user`: a PostgreSQL login's own
    user; else the JupyterHub user or the local admin, who, when an admin, may act as
    ``user`` or ``TTG_LAB_USER``).

    The schema is always brought up to date; with ``init`` the shipped market data is
    loaded when the store has none yet.
    """
    settings = resolve_settings(db_url)
    store = Store(settings.db_url)
    try:
        store.migrate()
        acting = users.resolve_user(store, user)
        if init and not loader.holds_data(store):
            DataAPI(store, settings, ensure_local_user(store)).load_shipped()
    except BaseException:
        store.dispose()
        raise
    return Lab(settings, store, acting)
