"""The lab: one object that notebooks, widgets, the CLI and batches all talk to.

lab = ttg_lab.open()
model = lab.models.create("my momentum", ai_model_id="baseline/momentum")
run = lab.start_run(model, mode="daily", start="2025-06-10", end="2025-10-30")
run.wait(); run.ledger()
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

import pandas as pd

from ttg_lab.broker import CostModel
from ttg_lab.config import Settings, resolve_settings
from ttg_lab.engine.events import Subscriber
from ttg_lab.leaderboard import leaderboard
from ttg_lab.market import loader
from ttg_lab.metrics.runs import run_metrics
from ttg_lab.models import ModelInfo, ModelService
from ttg_lab.news.store import import_news_file, load_shipped_news
from ttg_lab.rules.service import RuleService
from ttg_lab.runs import RunHandle, RunService
from ttg_lab.services.manager import ServiceManager
from ttg_lab.store.database import Store
from ttg_lab.store.schema import User
from ttg_lab.users import ensure_local_user


class DataAPI:
    """Market data in the store: list datasets, load files."""

    def __init__(self, store: Store, settings: Settings, user: User | None = None) -> None:
        self.store = store
        self.settings = settings
        self.user = user

    def list(self) -> pd.DataFrame:
        return loader.list_datasets(self.store)

    def load(self, path: str, market: str, format: str = "auto", name: str | None = None) -> int:
        """Import a price file (Alpha Vantage JSON, AI-Trader JSONL, CSV) into the store."""
        return loader.load_file(self.store, path, market, format=format, name=name)

    def load_shipped(self, names: builtins.list[str] | None = None) -> dict[str, int]:
        """Load the shipped market data, news corpus and AI-Trader runs (skipping what is
        loaded already). The runs need every market's data: they load when ``names`` is None."""
        loaded = loader.load_shipped(self.store, self.settings.data_dir, names)
        loaded["news"] = load_shipped_news(self.store, self.settings.data_dir)
        if names is None:
            from ttg_lab.importers.shipped_runs import load_shipped_runs

            owner = self.user or ensure_local_user(self.store)
            loaded["aitrader_runs"] = load_shipped_runs(
                self.store, self.settings.data_dir, owner.id
            )
        return loaded

    def load_news(self, path: str, format: str = "auto") -> int:
        """Import dated news (Alpha Vantage JSON, AI-Trader logs, JSONL) for the search tool."""
        return import_news_file(self.store, path, format)


class Lab:
    """A store plus the services over it, acting as one user."""

    def __init__(self, settings: Settings, store: Store, user: User) -> None:
        self.settings = settings
        self.store = store
        self.user = user
        self.models = ModelService(store, user)
        self.data = DataAPI(store, settings, user)
        self.rules = RuleService(store, self.models, user)
        self._runs = RunService(store, self.models, self.rules)

    def __repr__(self) -> str:
        url = self.store.engine.url.render_as_string(hide_password=True)
        return f"<Lab {url} as {self.user.email}>"

    def init(self, load_data: bool = True) -> dict[str, int]:
        """Create the schema, the local admin and load the shipped market data (idempotent)."""
        self.store.migrate()
        self.user = self.data.user = ensure_local_user(self.store)
        return self.data.load_shipped() if load_data else {}

    def start_run(
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
        provenance: dict[str, Any] | None = None,
    ) -> RunHandle:
        """Start a run of ``model`` over ``start``..``end`` (whole data range by default).

        ``costs`` is a preset name (``default``, ``zero``, ``ibkr-fixed``), a dict of
        :class:`~ttg_lab.broker.CostModel` fields or a CostModel; ``fill`` is ``open``
        (the decision bar's open) or ``close``. ``path`` is ``chat`` (every model as a chat
        model calling the MCP tools) or ``direct`` (baselines calling the tools directly).
        """
        return self._runs.start(
            model,
            mode,
            start,
            end,
            costs,
            fill,
            seed,
            background,
            on_event,
            path=path,
            provenance=provenance,
        )

    def replay_run(self, run_id: int, background: bool = True) -> RunHandle:
        """Re-run a recorded run from its LLM call record: no network, same ledger."""
        source = self.run(run_id).info()
        snap = source["snapshot"]
        return self._runs.start(
            source["model"],
            source["mode"],
            source["start"],
            source["end"],
            snap["costs"],
            snap["fill"],
            snap["seed"],
            background,
            path="chat",
            replay_from=run_id,
        )

    def resume_run(
        self, run_id: int, background: bool = True, on_event: Subscriber | None = None
    ) -> RunHandle:
        """Continue a crashed, stopped or failed run from its last committed step."""
        return self._runs.resume(run_id, background, on_event)

    def run(self, run_id: int) -> RunHandle:
        """A handle on an existing run."""
        return self._runs.get(run_id)

    def leaderboard(
        self,
        market: str | None = None,
        mode: str | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        sort: str = "sharpe",
    ) -> pd.DataFrame:
        """Models ranked by their runs' metrics, with intervals and the benchmark verdict."""
        return leaderboard(self.store, market, mode, start, end, sort)

    def metrics(self, run_id: int) -> dict[str, Any]:
        """Every metric of a run (see ``ttg_lab.metrics.reference``), freshly computed."""
        return run_metrics(self.store, run_id)

    def analyst(
        self, run_id: int, model: str | None = None, parameters: dict[str, Any] | None = None
    ) -> Any:
        """An analyst conversation about a run: an LLM when ``model`` (or the global setting
        ``analyst.ai_model_id``) names one, the offline analyst otherwise."""
        from ttg_lab.analyst.analyst import Analyst

        return Analyst(self, run_id, model, parameters)

    def runs(self, model: int | str | ModelInfo | None = None) -> pd.DataFrame:
        """Runs of one model (or all), newest first."""
        return self._runs.frame(model)

    @property
    def services(self) -> ServiceManager:
        """Start, stop and check the MCP services (Math, Search, Trade, Price) over HTTP."""
        return ServiceManager(self.settings)

    def close(self) -> None:
        self.store.dispose()


def open_lab(db_url: str | None = None, init: bool = True) -> Lab:
    """Open the lab on ``db_url`` (default: ``TTG_LAB_DB_URL`` or ``data/ttg_lab.db``).

    The schema is always brought up to date; with ``init`` the shipped market data is
    loaded when the store has none yet.
    """
    settings = resolve_settings(db_url)
    store = Store(settings.db_url)
    store.migrate()
    lab = Lab(settings, store, ensure_local_user(store))
    if init and lab.data.list().empty:
        lab.data.load_shipped()
    return lab
