"""Experiment files: a grid of run parameters, validated before anything runs.

```yaml
name: momentum-sweep          # folder under reports/
concurrency: 2                # runs at once
base:                         # parameters every run shares
  mode: daily
  costs: default
grid:                         # lists expanded as a product
  ai_model_id: [baseline/momentum, baseline/mean_reversion]
  period:
    - {start: 2025-06-10, end: 2025-07-31}
    - {start: 2025-08-01, end: 2025-10-30}
  seed: [0, 1]
budget:                       # optional: a cap on the whole batch's LLM spend
  max_cost_usd: 5.0
repeats: 3                    # optional: runs of each parameter set (seeds seed, seed+1, ...)
data:                         # optional: bars to fetch before the first run (or a list of them)
  provider: alphavantage      # a data provider: alphavantage, ccxt:binance, eastmoney ...
  market: us
  interval: 1d                # optional: 1d by default
  symbols: [AAPL, MSFT]       # or universe: nasdaq100
  start: 2025-11-03
  end: 2025-11-28
  base_url: http://127.0.0.1:8080   # optional: a mirror, a proxy or a test server
```

Each expanded parameter set is one execution of ``notebooks/run_experiment.ipynb``.

Repeats: ``repeats`` (top level, for every parameter set, or a run parameter in ``base``,
a grid axis or a ``runs`` entry, which wins) makes one execution start that many runs of
its parameter set as one experiment (``lab.start_run(..., repeats=N)``). The experiment is
named after the batch and the parameter set, so an execution run again (a resumed batch)
resumes the repeats that did not complete and runs none that did.

Masking: ``masked: true`` among a run's parameters runs it masked (the model sees
pseudonymous tickers, shifted dates and scaled prices; the chat path only), and
``memorisation_gap: true`` makes the parameter set a memorisation gap: its ``repeats``
runs unmasked and as many masked, seeds alike, linked as one gap
(``lab.memorisation_gap``; run again, it resumes the runs that did not complete).

Budgets: ``max_cost_usd`` / ``max_tokens`` among a run's parameters (in ``base``, a grid
axis or a ``runs`` entry; 0, the default, means no cap) cap each run on its own. The
top-level ``budget`` caps the batch's total (every recorded call of its runs, wasted ones
too): the batch starts no new run once the total reaches a cap, and each run it starts
gets its share of what remains as its own cap (see :mod:`ttg_lab.batch.runner`).

Data: each ``data`` entry names bars the batch fetches before its first execution, through
``lab.data.fetch`` (admins only; the answers cached, so a rerun of the batch asks nothing
twice). An entry is checked with the file: unknown or missing keys, bad dates, an unknown
provider, universe or market, a symbol or interval the provider cannot ask for are refused
naming the entry and key, before anything is fetched or run. A fetch that fails refuses the
batch, naming provider, symbol and reason, with no run started. The grid's periods stay
dates: ``data`` says what to fetch, ``period`` what to run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ttg_lab.engine.budget import Budget, check_max_cost, check_max_tokens
from ttg_lab.errors import ConfigError, ValidationError
from ttg_lab.text import refuse_secret

PARAMETERS: dict[str, Any] = {
    "model": "exp-model",
    "ai_model_id": "baseline/momentum",
    "market": "us",
    "mode": "daily",
    "start": "2025-06-10",
    "end": "2025-10-30",
    "rules_preset": "none",
    "costs": "default",
    "seed": 0,
    "replay_from": 0,
    "path": "direct",
    "initial_cash": 100000.0,
    "parameters_json": "{}",
    "tags": "",
    "max_cost_usd": 0.0,
    "max_tokens": 0,
    "repeats": 1,
    "masked": False,
    "memorisation_gap": False,
}
"""The template's parameters and their defaults (the notebook's ``parameters`` cell);
a cap of 0 is no cap."""

CAP_CHECKS = {"max_cost_usd": check_max_cost, "max_tokens": check_max_tokens}
"""The budget parameters and how a cap is checked."""

TOP_LEVEL = {"name", "concurrency", "base", "grid", "runs", "template", "budget", "repeats", "data"}
DATA_KEYS = ("provider", "market", "interval", "symbols", "universe", "start", "end", "base_url")
"""The keys of a ``data`` entry (interval and base_url optional; symbols or universe)."""


T = TypeVar("T")


class ExperimentError(ValidationError):
    """An experiment file is invalid; nothing ran."""


@dataclass(frozen=True)
class RunSpec:
    """One parameter set of an experiment."""

    key: str
    parameters: dict[str, Any]

    @property
    def label(self) -> str:
        p = self.parameters
        repeats = f" x{p['repeats']}" if p["repeats"] > 1 else ""
        kind = (
            " memorisation gap (unmasked and masked)"
            if p["memorisation_gap"]
            else " masked"
            if p["masked"]
            else ""
        )
        return (
            f"{p['model']} {p['ai_model_id']} {p['start']}..{p['end']} seed {p['seed']}"
            f"{repeats}{kind}"
        )

    @property
    def runs(self) -> int:
        """How many runs the set starts: its repeats, in both arms for a gap."""
        p = self.parameters
        return int(p["repeats"]) * (2 if p["memorisation_gap"] else 1)


@dataclass(frozen=True)
class DataFetch:
    """One ``data`` entry: bars the batch fetches before its first run (checked days)."""

    provider: str
    market: str
    interval: str
    start: str
    end: str
    symbols: tuple[str, ...] | None = None
    universe: str | None = None
    base_url: str | None = None

    @property
    def label(self) -> str:
        what = f"universe {self.universe}" if self.universe else ", ".join(self.symbols or ())
        return f"{self.provider} {self.market} {self.interval} {what} {self.start}..{self.end}"


@dataclass
class ExperimentFile:
    """A parsed experiment file: its parameter sets, how many run at once, the template and
    the batch's budget. (An experiment of repeats, :class:`ttg_lab.run.Experiment`, is what
    one parameter set with ``repeats`` becomes in the store.)"""

    name: str
    runs: list[RunSpec]
    concurrency: int = 1
    template: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)  # a cap on the batch's total
    data: tuple[DataFetch, ...] = ()  # fetched before the first run


LATER_PARAMETERS: dict[str, Any] = {
    "max_cost_usd": 0.0,
    "max_tokens": 0,
    "repeats": 1,
    "masked": False,
    "memorisation_gap": False,
}
"""Parameters the template gained after batches were run, with their defaults: at its
default such a parameter stays out of a set's key, so a batch started before it existed
keeps its keys (run again, it skips what finished). Add each new parameter here."""


def spec_key(parameters: dict[str, Any]) -> str:
    """A stable id for a parameter set (the same set is the same run on a re-run)."""
    keyed = {
        k: v for k, v in parameters.items() if k not in LATER_PARAMETERS or LATER_PARAMETERS[k] != v
    }
    blob = json.dumps(keyed, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _check_parameters(params: dict[str, Any], where: str) -> dict[str, Any]:
    from ttg_lab.agents.factory import validate_agent
    from ttg_lab.broker.costs import resolve_cost_model
    from ttg_lab.dates import parse_date
    from ttg_lab.market.markets import get_market
    from ttg_lab.model_rules import RULE_PRESETS
    from ttg_lab.runs.experiments import check_repeats
    from ttg_lab.text import refuse_secrets

    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise ExperimentError(
            f"{where}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(PARAMETERS)}"
        )
    merged = {**PARAMETERS, **params}
    for key, default in PARAMETERS.items():
        value = merged[key]
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            merged[key] = value = float(value)
        if type(value) is not type(default):
            raise ExperimentError(f"{where}: {key} must be {type(default).__name__}, got {value!r}")
    try:
        validate_agent(merged["ai_model_id"], json.loads(merged["parameters_json"]))
        get_market(merged["market"])
        resolve_cost_model(merged["costs"])
    except json.JSONDecodeError as exc:
        raise ExperimentError(f"{where}: parameters_json is not JSON ({exc.msg})") from None
    except ValidationError as exc:
        raise ExperimentError(f"{where}: {exc}") from None
    except Exception as exc:  # NotFoundError for unknown models or markets
        raise ExperimentError(f"{where}: {exc}") from None
    try:
        check_repeats(merged["repeats"])
    except ValidationError as exc:
        raise ExperimentError(f"{where}: {exc}") from None
    for key, check in CAP_CHECKS.items():
        try:
            check(merged[key] or None, key)
        except ValidationError as exc:
            raise ExperimentError(f"{where}: {exc} (or 0: no cap)") from None
    _check_masking(merged, where)
    if merged["mode"] not in ("daily", "intraday"):
        raise ExperimentError(f"{where}: mode must be daily or intraday, got {merged['mode']!r}")
    if merged["rules_preset"] not in RULE_PRESETS:
        raise ExperimentError(f"{where}: unknown rules preset {merged['rules_preset']!r}")
    timezone = get_market(merged["market"]).timezone
    try:
        begin = parse_date(merged["start"], "start", timezone)
        finish = parse_date(merged["end"], "end", timezone)
    except ValidationError as exc:
        raise ExperimentError(f"{where}: {exc}") from None
    if finish < begin:
        raise ExperimentError(f"{where}: end {merged['end']} is before start {merged['start']}")
    try:
        refuse_secrets(merged, where)
    except ValidationError as exc:
        raise ExperimentError(str(exc)) from None
    return merged


def _check_masking(merged: dict[str, Any], where: str) -> None:
    """``masked`` and ``memorisation_gap`` (whose second arm is masked) as a run checks
    them: masking needs the chat path and cannot replay an unmasked run; a gap runs both
    arms, so it takes no ``masked``."""
    from ttg_lab.runs.options import RunOptions

    if merged["memorisation_gap"] and merged["masked"]:
        raise ExperimentError(
            f"{where}: a memorisation gap runs both arms, unmasked and masked: give no masked: true"
        )
    if merged["memorisation_gap"] and merged["replay_from"]:
        raise ExperimentError(f"{where}: a memorisation gap replays nothing: give no replay_from")
    try:
        RunOptions(path=merged["path"], masked=merged["masked"] or merged["memorisation_gap"])
    except ValidationError as exc:
        raise ExperimentError(f"{where}: {exc}") from None


def expand(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every parameter set of an experiment document (base + grid product + runs)."""
    base = doc.get("base") or {}
    grid = doc.get("grid") or {}
    if not isinstance(base, dict) or not isinstance(grid, dict):
        raise ExperimentError("base and grid must be mappings")
    axes: list[list[dict[str, Any]]] = []
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ExperimentError(f"grid.{key} must be a non-empty list")
        if key == "period":
            for period in values:
                if not isinstance(period, dict) or set(period) != {"start", "end"}:
                    raise ExperimentError("grid.period entries must be {start: ..., end: ...}")
            axes.append([{"start": str(p["start"]), "end": str(p["end"])} for p in values])
        else:
            axes.append([{key: v} for v in values])
    combos = (
        [
            dict(base, **{k: v for part in parts for k, v in part.items()})
            for parts in itertools.product(*axes)
        ]
        if axes
        else []
    )
    explicit = doc.get("runs") or []
    if not isinstance(explicit, list):
        raise ExperimentError("runs must be a list of parameter mappings")
    combos += [dict(base, **r) for r in explicit]
    return [{k: (str(v) if k in ("start", "end") else v) for k, v in c.items()} for c in combos]


def load_experiment(path: str | Path) -> ExperimentFile:
    """Read and validate an experiment file; every run's parameters are checked."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ExperimentError(f"{path}: cannot read the experiment ({exc})") from None
    return parse_experiment(doc, str(path))


def parse_experiment(doc: Any, where: str = "experiment") -> ExperimentFile:
    if not isinstance(doc, dict):
        raise ExperimentError(f"{where}: the experiment must be a mapping")
    unknown = sorted(set(doc) - TOP_LEVEL)
    if unknown:
        raise ExperimentError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(TOP_LEVEL))}"
        )
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip() or os.sep in name or name.startswith("."):
        raise ExperimentError(f"{where}: name must be a plain folder name")
    try:
        refuse_secret(name, f"{where}: the experiment's name")
    except ValidationError as exc:
        raise ExperimentError(str(exc)) from None
    concurrency = doc.get("concurrency", 1)
    if not isinstance(concurrency, int) or not 1 <= concurrency <= 64:
        raise ExperimentError(f"{where}: concurrency must be 1 to 64")
    budget = _batch_budget(doc.get("budget"), where)
    data = _data_section(doc.get("data"), where)
    combos = expand(doc)
    if not combos:
        raise ExperimentError(f"{where}: the grid is empty: nothing to run")
    if "repeats" in doc:  # every parameter set's, unless it says otherwise
        combos = [{"repeats": doc["repeats"], **params} for params in combos]
    runs, seen = [], set()
    for i, params in enumerate(combos, 1):
        if "model" not in params:  # one model per agent (and market) unless the file names one
            agent = str(params.get("ai_model_id", PARAMETERS["ai_model_id"])).replace("/", "-")
            params = {**params, "model": f"{name.strip()}-{agent}-{params.get('market', 'us')}"}
        checked = _check_parameters(params, f"{where} run {i}")
        key = spec_key(checked)
        if key not in seen:
            seen.add(key)
            runs.append(RunSpec(key, checked))
    template = str(doc.get("template", ""))
    return ExperimentFile(name.strip(), runs, concurrency, template, doc, budget, data)


def _batch_budget(value: Any, where: str) -> Budget:
    """The top-level ``budget``: caps on the batch's total spend (none when absent)."""
    if value is None:
        return Budget()
    if not isinstance(value, dict) or not set(value) <= set(CAP_CHECKS):
        raise ExperimentError(
            f"{where}: budget must be a mapping of {' and/or '.join(CAP_CHECKS)}, got {value!r}"
        )
    try:
        return Budget(value.get("max_cost_usd"), value.get("max_tokens"))
    except ValidationError as exc:
        raise ExperimentError(f"{where}: budget: {exc}") from None


def _data_section(value: Any, where: str) -> tuple[DataFetch, ...]:
    """The top-level ``data``: a mapping or a list of them (none when absent)."""
    if value is None:
        return ()
    if isinstance(value, dict):
        return (_data_entry(value, f"{where}: data"),)
    if not isinstance(value, list) or not value:
        raise ExperimentError(
            f"{where}: data must be a mapping of {', '.join(DATA_KEYS)} or a non-empty list "
            f"of them, got {value!r}"
        )
    return tuple(_data_entry(entry, f"{where}: data entry {i}") for i, entry in enumerate(value, 1))


def _data_entry(entry: Any, what: str) -> DataFetch:
    """One ``data`` entry checked as its fetch will be: dates, provider, universe and the
    planned requests (:func:`~ttg_lab.market.fetch.plan_fetch`), with nothing sent."""
    from ttg_lab.dates import parse_date
    from ttg_lab.market.fetch import plan_fetch
    from ttg_lab.market.markets import get_market
    from ttg_lab.market.providers import make_provider
    from ttg_lab.market.universes import universe_symbols
    from ttg_lab.text import refuse_secrets

    if not isinstance(entry, dict):
        raise ExperimentError(f"{what} must be a mapping of {', '.join(DATA_KEYS)}, got {entry!r}")
    unknown = sorted(str(k) for k in set(entry) - set(DATA_KEYS))
    if unknown:
        raise ExperimentError(
            f"{what}: unknown key(s) {', '.join(unknown)}; known: {', '.join(DATA_KEYS)}"
        )
    missing = [k for k in ("provider", "market", "start", "end") if k not in entry]
    if missing:
        raise ExperimentError(f"{what}: missing {', '.join(missing)}")
    if ("symbols" in entry) == ("universe" in entry):
        raise ExperimentError(f"{what}: give either symbols or universe")
    given = {**entry, "interval": entry.get("interval", "1d")}
    for key in ("provider", "market", "interval", "universe", "base_url"):
        if key in given and (not isinstance(given[key], str) or not given[key].strip()):
            raise ExperimentError(f"{what}: {key} must be text, got {given[key]!r}")
    symbols = given.get("symbols")
    if symbols is not None and (
        not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols)
    ):
        raise ExperimentError(
            f"{what}: symbols must be a non-empty list of symbols, got {symbols!r}"
        )

    def checked(key: str, check: Callable[[], T]) -> T:
        try:
            return check()
        except Exception as exc:  # ValidationError, NotFoundError, ConfigError ...
            raise ExperimentError(f"{what}: {key}: {exc}") from None

    try:
        refuse_secrets({k: str(v) for k, v in given.items()}, what)
    except ValidationError as exc:
        raise ExperimentError(str(exc)) from None
    market = checked("market", lambda: get_market(given["market"]))
    first = checked("start", lambda: parse_date(given["start"], "start", market.timezone).date())
    last = checked("end", lambda: parse_date(given["end"], "end", market.timezone).date())
    if last < first:
        raise ExperimentError(f"{what}: end {last} is before start {first}")
    base_url = given.get("base_url")
    try:
        provider = make_provider(given["provider"], base_url)
    except ConfigError as exc:  # the base URL's check
        raise ExperimentError(f"{what}: base_url: {exc}") from None
    except Exception as exc:  # an unknown provider or variant
        raise ExperimentError(f"{what}: provider: {exc}") from None
    universe = given.get("universe")
    chosen = (
        checked("universe", lambda: universe_symbols(universe, market.code))
        if universe is not None
        else symbols or []
    )
    try:  # its messages name the interval or symbol refused
        plans = plan_fetch(provider, market, chosen, given["interval"], first, last)
    except Exception as exc:
        raise ExperimentError(f"{what}: {exc}") from None
    return DataFetch(
        given["provider"].strip(),
        market.code,
        given["interval"],
        first.isoformat(),
        last.isoformat(),
        tuple(plans) if universe is None else None,
        universe,
        base_url,
    )
