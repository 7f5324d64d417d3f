"""A run's snapshot: everything that defines a run, written once when it starts.

The store keeps it as JSON (``trading_runs.strategy_snapshot``). :meth:`RunSnapshot.from_json`
reads every shape earlier versions stored, :meth:`RunSnapshot.to_json` writes the current
one, and the rest of the package reads a run's definition through this class only:
:meth:`~RunSnapshot.index` gives the prices the run saw and :meth:`~RunSnapshot.context`
the run's state, so nothing rebuilds either by hand.

Shapes read (``version`` absent before version 1):

- the first runs: ``model``, ``tickers``, ``rules``, ``costs``, ``fill``, ``seed``,
  ``interval``, ``prompt_version``, ``data_fingerprint``, ``package_version``;
- then ``agent_path`` and ``replay_of`` (runs before them took the chat path), then
  ``experiment`` (an experiment's provenance), then ``budget`` (the run's LLM caps; runs
  before it had none), then ``forward`` (a forward run's until, provider, provider_url,
  missed and started_at; absent or null: a backtest), then ``masked`` and ``mask_seed``
  (a masked run and the seed of its mask; absent: not masked);
- runs imported from AI-Trader add ``imported_from``, ``source``, ``source_path``,
  ``source_files``, later ``trimmed_copy`` and ``source_bar_labels`` (imports before it
  read every clock as a bar start), ``reconciliation`` and ``notes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any, Literal

from ttg_lab.broker.costs import CostModel, resolve_cost_model
from ttg_lab.broker.portfolio import Portfolio
from ttg_lab.engine.budget import Budget
from ttg_lab.engine.context import RunContext
from ttg_lab.errors import ValidationError
from ttg_lab.market.asof import PriceIndex
from ttg_lab.market.bars import BarLabel
from ttg_lab.market.cache import price_index
from ttg_lab.market.markets import Market, get_market
from ttg_lab.market.masking import Mask, make_mask
from ttg_lab.market.names import company_names
from ttg_lab.news.search import NewsIndex
from ttg_lab.rules.constraints import RuleSet
from ttg_lab.rules.risk import RiskState
from ttg_lab.store.database import Store

SNAPSHOT_VERSION = 1
"""The shape :meth:`RunSnapshot.to_json` writes (0: the shapes stored before versions)."""

AgentPath = Literal["chat", "direct", "imported"]
"""How a run's decisions were taken: a chat model over MCP, a policy calling the tools
directly, or read from AI-Trader's published logs."""


@dataclass(frozen=True)
class ModelConfig:
    """The model as it was when the run started."""

    name: str
    signature: str
    market: str
    ai_model_id: str
    parameters: dict[str, Any]
    initial_cash: float
    tickers: list[str] | None
    custom_rules: str
    custom_instructions: str

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


ImportOrigin = Literal["folder", "shipped"]
"""Where an imported run's files came from: a user's folder, or the runs shipped with the lab
(every user's reference)."""


@dataclass(frozen=True)
class ImportSource:
    """Where an imported AI-Trader run came from, and how it was booked."""

    source: ImportOrigin
    source_path: str
    source_files: dict[str, str]
    source_bar_labels: BarLabel = "start"
    trimmed_copy: dict[str, int] | None = None  # what a trimmed copy of the files cut
    reconciliation: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


MissedBars = Literal["decide", "skip"]
"""What a resumed forward run does with the bars that came while it was down."""


@dataclass(frozen=True)
class ForwardSpec:
    """How a forward run follows the wall clock: until which day (None: open-ended), the
    provider it polls (a spec for ``make_provider`` and the base URL it was given), what
    resume does with missed bars, and when it was created (naive UTC: its first step is
    the first bar starting at or after it)."""

    provider: str
    started_at: datetime
    until: date | None = None
    provider_url: str | None = None
    missed: MissedBars = "decide"

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "provider_url": self.provider_url,
            "until": None if self.until is None else self.until.isoformat(),
            "missed": self.missed,
            "started_at": self.started_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ForwardSpec | None:
        if not data:
            return None
        until = data.get("until")
        return cls(
            provider=str(data["provider"]),
            started_at=datetime.fromisoformat(str(data["started_at"])),
            until=None if until is None else date.fromisoformat(str(until)),
            provider_url=data.get("provider_url"),
            missed="skip" if data.get("missed") == "skip" else "decide",
        )


@dataclass(frozen=True)
class RunSnapshot:
    """What defines a run: the model, universe, rules, costs, fill, seed, bars, agent path,
    provenance, LLM budget, masking and the versions of data, prompt and package it ran
    on."""

    model: ModelConfig
    tickers: tuple[str, ...]
    rules: RuleSet
    costs: CostModel
    fill: str
    seed: int
    interval: str
    agent_path: AgentPath
    data_fingerprint: str
    package_version: str
    prompt_version: str | None = None
    replay_of: int | None = None
    experiment: dict[str, Any] = field(default_factory=dict)
    imported: ImportSource | None = None
    budget: Budget = field(default_factory=Budget)
    forward: ForwardSpec | None = None
    mask_seed: int | None = None
    """The seed of a masked run's mask (the run's seed); None: not masked."""
    version: int = SNAPSHOT_VERSION

    @property
    def masked(self) -> bool:
        return self.mask_seed is not None

    def mask(self, last_day: date | None = None) -> Mask | None:
        """The run's mask (None when not masked), the same each time it is built: from the
        mask seed, the tickers, their company names and the lots (the market's and the
        rules'), so a lot is a whole number of masked units. ``last_day``: the run's last
        day, refused when its shifted date would cross 2100."""
        if self.mask_seed is None:
            return None
        names = {symbol: company_names(symbol) for symbol in self.tickers}
        rule_lots = (int(c.params["lot_size"]) for c in self.rules.with_param("lot_size"))
        lots = [lot for lot in (self.market.lot_size, *rule_lots) if lot > 1]
        return make_mask(
            self.mask_seed, self.tickers, names, lot_size=math.gcd(*lots) or 1, last_day=last_day
        )

    @property
    def market(self) -> Market:
        return get_market(self.model.market)

    @property
    def initial_cash(self) -> float:
        return float(self.model.initial_cash)

    def index(self, store: Store) -> PriceIndex:
        """The prices this run saw: its market's interval as of its data fingerprint."""
        return price_index(store, self.model.market, self.interval, self.data_fingerprint)

    def context(
        self,
        index: PriceIndex,
        run_id: int = 0,
        portfolio: Portfolio | None = None,
        *,
        news: NewsIndex | None = None,
        rules: RuleSet | None = None,
        risk: RiskState | None = None,
        read_only: bool = False,
    ) -> RunContext:
        """The run's state over ``index``: its market, universe, costs, fill, seed and rules
        (``rules`` instead, for a counterfactual), with ``portfolio`` (the initial cash
        when None) and ``risk`` (a fresh state when None)."""
        return RunContext(
            run_id=run_id,
            market=self.market,
            index=index,
            tickers=frozenset(self.tickers),
            portfolio=portfolio if portfolio is not None else Portfolio(self.initial_cash),
            costs=self.costs,
            fill=self.fill,
            seed=self.seed,
            news=news,
            read_only=read_only,
            rules=self.rules if rules is None else rules,
            risk=risk if risk is not None else RiskState(),
            mask=self.mask(),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON the store keeps (the current shape)."""
        data: dict[str, Any] = {}
        if self.imported is not None:
            imp = self.imported
            data |= {
                "imported_from": "aitrader",
                "source": imp.source,
                "source_path": imp.source_path,
                "source_files": imp.source_files,
                "source_bar_labels": imp.source_bar_labels,
                "trimmed_copy": imp.trimmed_copy,
            }
        data |= {
            "model": self.model.as_dict(),
            "tickers": list(self.tickers),
            "rules": self.rules.to_list(),
            "costs": self.costs.to_dict(),
            "fill": self.fill,
            "seed": self.seed,
            "interval": self.interval,
            "agent_path": self.agent_path,
            "experiment": self.experiment,
            "budget": self.budget.to_json(),
            "replay_of": self.replay_of,
            "prompt_version": self.prompt_version,
            "data_fingerprint": self.data_fingerprint,
            "package_version": self.package_version,
            "version": self.version,
        }
        if self.forward is not None:  # a backtest's snapshot keeps its earlier shape
            data["forward"] = self.forward.to_json()
        if self.mask_seed is not None:  # so does an unmasked run's
            data |= {"masked": True, "mask_seed": self.mask_seed}
        if self.imported is not None:
            data |= {"reconciliation": self.imported.reconciliation, "notes": self.imported.notes}
        return data

    @staticmethod
    def import_source(data: dict[str, Any]) -> ImportSource | None:
        """Where the run of snapshot JSON ``data`` was imported from (None: not imported)."""
        if data.get("imported_from") != "aitrader":
            return None
        return ImportSource(
            source=data.get("source", ""),  # as stored: "folder" or "shipped"
            source_path=str(data.get("source_path", "")),
            source_files=dict(data.get("source_files") or {}),
            source_bar_labels=data.get("source_bar_labels", "start"),
            trimmed_copy=data.get("trimmed_copy"),
            reconciliation=dict(data.get("reconciliation") or {}),
            notes=list(data.get("notes") or []),
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSnapshot:
        """A snapshot from the JSON of any version the store may hold."""
        version = int(data.get("version", 0))
        if version > SNAPSHOT_VERSION:
            raise ValidationError(
                f"run snapshot version {version} is newer than this package reads "
                f"({SNAPSHOT_VERSION}); upgrade ttg-lab"
            )
        try:
            model = data["model"]
            imported = cls.import_source(data)
            return cls(
                model=ModelConfig(
                    name=str(model["name"]),
                    signature=str(model["signature"]),
                    market=str(model["market"]),
                    ai_model_id=str(model["ai_model_id"]),
                    parameters=dict(model.get("parameters") or {}),
                    initial_cash=float(model["initial_cash"]),
                    tickers=model.get("tickers"),
                    custom_rules=model.get("custom_rules") or "",
                    custom_instructions=model.get("custom_instructions") or "",
                ),
                tickers=tuple(data.get("tickers") or ()),
                rules=RuleSet.from_list(list(data.get("rules") or [])),
                costs=resolve_cost_model(data["costs"]),
                fill=str(data.get("fill", "open")),
                seed=int(data.get("seed", 0)),
                interval=str(data.get("interval", "1d")),
                agent_path=data.get("agent_path") or ("imported" if imported else "chat"),
                data_fingerprint=str(data["data_fingerprint"]),
                package_version=str(data.get("package_version", "")),
                prompt_version=data.get("prompt_version"),
                replay_of=data.get("replay_of"),
                experiment=dict(data.get("experiment") or {}),
                imported=imported,
                budget=Budget.from_json(data.get("budget")),
                forward=ForwardSpec.from_json(data.get("forward")),
                mask_seed=int(data["mask_seed"]) if data.get("masked") else None,
                version=SNAPSHOT_VERSION,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"unreadable run snapshot ({type(exc).__name__}: {exc})") from exc
