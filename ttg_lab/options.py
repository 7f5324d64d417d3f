"""Every choice a user makes, in one place: what the command line, the widgets and the
notebooks offer and check against.

Each list is derived from the module that owns it (a mode is what ``market.bars`` maps
to an interval, a cost preset what ``broker.costs`` prices), so adding one there adds it
here. Choices that are registries (policies, bar readers, news formats) are functions:
they list what is registered when called, so a policy registered in a notebook shows up.

The choices load from their owners on first use (a module ``__getattr__``), so importing
this module, or the command line that builds its options from it, loads none of the run
machinery: the owners of modes, paths, roles or sorts pull in pandas and the store.

    from ttg_lab import options
    options.MODES            # ('daily', 'intraday')
    options.policies()       # ('baseline/buy_and_hold', ..., 'policy/MyPolicy')
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what __getattr__ gives, typed; at run time each loads on first use
    from ttg_lab.agents.factory import check_path
    from ttg_lab.clock import Clock
    from ttg_lab.dates import parse_date
    from ttg_lab.engine.ledger import LedgerStatus
    from ttg_lab.leaderboard import BoardVerdict, ranked_tables, telling_columns
    from ttg_lab.market.bars import BarLabel
    from ttg_lab.market.fetch import FetchProgress, FetchReport
    from ttg_lab.market.loader import BarConflictError
    from ttg_lab.market.markets import get_market
    from ttg_lab.market.providers.base import checked_base_url
    from ttg_lab.rules.gate import Verdict
    from ttg_lab.store.schema import RunStatus

    MODES: tuple[str, ...]
    COST_PRESETS: tuple[str, ...]
    FILL_POLICIES: tuple[str, ...]
    AGENT_PATHS: tuple[str, ...]
    RULE_PRESETS: tuple[str, ...]
    RULE_CATEGORIES: tuple[str, ...]
    RULE_PARAMETERS: tuple[str, ...]
    MARKETS: tuple[str, ...]
    ROLES: tuple[str, ...]
    EXPERIENCE: tuple[str, ...]
    RISK_TOLERANCE: tuple[str, ...]
    LEADERBOARD_SORTS: tuple[str, ...]
    LEADERBOARD_SUMMARY: tuple[str, ...]
    LEADERBOARD_COLUMNS: tuple[str, ...]
    LEADERBOARD_ACROSS: tuple[str, ...]
    VERDICTS: tuple[BoardVerdict, ...]
    GATE_VERDICTS: tuple[Verdict, ...]
    INTERVALS: tuple[str, ...]
    BAR_LABELS: tuple[BarLabel, ...]
    MAX_REPEATS: int
    UNIVERSES: tuple[str, ...]
    WALL_CLOCK: Clock


def _listed(value: Any) -> tuple[str, ...]:
    """The names of a mapping, or the items of a sequence, as a tuple."""
    return tuple(value)


def _sorted(value: Any) -> tuple[str, ...]:
    """The names, sorted: for owners that keep them in no meaningful order."""
    return tuple(sorted(value))


def _as_is(value: Any) -> Any:
    """Functions and types are given as their owners define them."""
    return value


_CHOICES: dict[str, tuple[str, str, Callable[[Any], Any]]] = {
    # name: (owner module, owner's name, how the owner's value becomes the choice)
    "MODES": ("ttg_lab.market.bars", "MODES", _listed),  # daily on 1d bars, intraday on 60min
    "INTERVALS": ("ttg_lab.market.bars", "INTERVALS", _listed),
    "BAR_LABELS": ("ttg_lab.market.bars", "BAR_LABELS", _listed),
    "BarLabel": ("ttg_lab.market.bars", "BarLabel", _as_is),
    "COST_PRESETS": ("ttg_lab.broker.costs", "COST_PRESETS", _listed),  # start_run(costs=)
    "FILL_POLICIES": ("ttg_lab.broker.fills", "FILL_POLICIES", _listed),
    "AGENT_PATHS": ("ttg_lab.agents.factory", "AGENT_PATHS", _listed),
    "check_path": ("ttg_lab.agents.factory", "check_path", _as_is),
    "RULE_PRESETS": ("ttg_lab.model_rules", "RULE_PRESETS", _listed),  # rules.apply_preset
    "RULE_CATEGORIES": ("ttg_lab.rules.params", "CATEGORIES", _listed),
    "RULE_PARAMETERS": ("ttg_lab.rules.params", "RULE_PARAMS", _listed),
    "MARKETS": ("ttg_lab.market.markets", "MARKETS", _listed),
    "ROLES": ("ttg_lab.users", "ROLES", _listed),
    "EXPERIENCE": ("ttg_lab.profiles", "EXPERIENCE", _listed),
    "RISK_TOLERANCE": ("ttg_lab.profiles", "RISK_TOLERANCE", _listed),
    "LEADERBOARD_SORTS": ("ttg_lab.leaderboard", "SORTABLE", _sorted),  # leaderboard(sort=)
    "LEADERBOARD_SUMMARY": ("ttg_lab.leaderboard", "SUMMARY_COLUMNS", _listed),
    "LEADERBOARD_COLUMNS": ("ttg_lab.leaderboard", "BOARD_COLUMNS", _listed),
    "LEADERBOARD_ACROSS": ("ttg_lab.leaderboard", "ACROSS", _listed),  # leaderboard(across=)
    # how a face shows a board: a table per group, the summary columns that tell something
    "ranked_tables": ("ttg_lab.leaderboard", "ranked_tables", _as_is),
    "telling_columns": ("ttg_lab.leaderboard", "telling_columns", _as_is),
    "VERDICTS": ("ttg_lab.leaderboard", "VERDICTS", _listed),
    "BoardVerdict": ("ttg_lab.leaderboard", "BoardVerdict", _as_is),
    "GATE_VERDICTS": ("ttg_lab.rules.gate", "VERDICTS", _listed),
    "Verdict": ("ttg_lab.rules.gate", "Verdict", _as_is),
    "LedgerStatus": ("ttg_lab.engine.ledger", "LedgerStatus", _as_is),
    "RunStatus": ("ttg_lab.store.schema", "RunStatus", _as_is),
    "MAX_REPEATS": ("ttg_lab.runs.experiments", "MAX_REPEATS", _as_is),  # start_run(repeats=)
    # data fetches (lab.data.fetch): the universes a fetch may name, the checks of its
    # form, what it reports, and the clock it waits on
    "UNIVERSES": ("ttg_lab.market.universes", "UNIVERSES", _listed),
    "get_market": ("ttg_lab.market.markets", "get_market", _as_is),
    "parse_date": ("ttg_lab.dates", "parse_date", _as_is),
    "checked_base_url": ("ttg_lab.market.providers.base", "checked_base_url", _as_is),
    "FetchProgress": ("ttg_lab.market.fetch", "FetchProgress", _as_is),
    "FetchReport": ("ttg_lab.market.fetch", "FetchReport", _as_is),
    "BarConflictError": ("ttg_lab.market.loader", "BarConflictError", _as_is),
    "Clock": ("ttg_lab.clock", "Clock", _as_is),
    "WALL_CLOCK": ("ttg_lab.clock", "WALL_CLOCK", _as_is),
}
"""Every static choice and type, by the name it has here, and where its owner keeps it."""

DATA_FORMAT_AUTO = "auto"
"""The format name that lets the file's content pick its reader."""


def __getattr__(name: str) -> Any:
    """A choice, read from its owner the first time it is asked for (then kept)."""
    if name not in _CHOICES:
        raise AttributeError(f"module 'ttg_lab.options' has no attribute {name!r}")
    module, attribute, make = _CHOICES[name]
    value = make(getattr(import_module(module), attribute))
    globals()[name] = value
    return value


def policies() -> tuple[str, ...]:
    """AI model ids of every policy registered now: the baselines and yours."""
    import ttg_lab.agents.baselines  # noqa: F401  (the baselines register on import)
    from ttg_lab.agents.policy import POLICIES

    return POLICIES.names()


def baselines() -> tuple[str, ...]:
    """AI model ids of the shipped baselines."""
    from ttg_lab.agents.base import baseline_ids

    return tuple(baseline_ids())


def llm_providers() -> tuple[str, ...]:
    """LLM provider presets: ``openrouter`` (ids without a prefix) and those addressed as
    ``<provider>/<model>`` (``ollama/qwen2.5:7b``, ``local/smollm2``...)."""
    from ttg_lab.llm.providers import PROVIDERS

    return PROVIDERS.names()


def tool_modes() -> tuple[str, ...]:
    """How an LLM calls tools (parameter ``tool_mode``): auto, native or json."""
    from ttg_lab.llm.providers import TOOL_MODES

    return TOOL_MODES


def bar_formats() -> tuple[str, ...]:
    """Formats ``lab.data.load(format=...)`` reads (``auto`` first)."""
    from ttg_lab.market.importers import READERS

    return (DATA_FORMAT_AUTO, *READERS.names())


def data_providers() -> tuple[str, ...]:
    """Data providers ``lab.data.fetch(provider=...)`` knows (``ccxt`` takes an exchange:
    ``ccxt:binance``)."""
    from ttg_lab.market.providers import PROVIDERS

    return PROVIDERS.names()


def news_formats() -> tuple[str, ...]:
    """Formats ``lab.data.load_news(format=...)`` reads (``auto`` first)."""
    from ttg_lab.news.importers import FORMATS

    return (DATA_FORMAT_AUTO, *FORMATS.names())


__all__ = [
    "AGENT_PATHS",
    "BAR_LABELS",
    "COST_PRESETS",
    "DATA_FORMAT_AUTO",
    "EXPERIENCE",
    "FILL_POLICIES",
    "GATE_VERDICTS",
    "INTERVALS",
    "LEADERBOARD_ACROSS",
    "LEADERBOARD_COLUMNS",
    "LEADERBOARD_SORTS",
    "LEADERBOARD_SUMMARY",
    "MARKETS",
    "MAX_REPEATS",
    "MODES",
    "RISK_TOLERANCE",
    "ROLES",
    "RULE_CATEGORIES",
    "RULE_PARAMETERS",
    "RULE_PRESETS",
    "UNIVERSES",
    "VERDICTS",
    "WALL_CLOCK",
    "BarConflictError",
    "BarLabel",
    "BoardVerdict",
    "Clock",
    "FetchProgress",
    "FetchReport",
    "LedgerStatus",
    "RunStatus",
    "Verdict",
    "bar_formats",
    "baselines",
    "check_path",
    "checked_base_url",
    "data_providers",
    "get_market",
    "llm_providers",
    "news_formats",
    "parse_date",
    "policies",
    "ranked_tables",
    "telling_columns",
    "tool_modes",
]
