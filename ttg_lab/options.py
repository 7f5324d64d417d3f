"""Every choice a user makes, in one place: what the command line, the widgets and the
notebooks offer and check against.

Each list is derived from the module that owns it (a mode is what ``market.bars`` maps
to an interval, a cost preset what ``broker.costs`` prices), so adding one there adds it
here. Choices that are registries (policies, bar readers, news formats) are functions:
they list what is registered when called, so a policy registered in a notebook shows up.

    from ttg_lab import options
    options.MODES            # ('daily', 'intraday')
    options.policies()       # ('baseline/buy_and_hold', ..., 'policy/MyPolicy')
"""

from __future__ import annotations

from ttg_lab.agents.factory import AGENT_PATHS, check_path
from ttg_lab.broker.costs import COST_PRESETS as _COST_PRESETS
from ttg_lab.broker.fills import FILL_POLICIES
from ttg_lab.engine.ledger import LedgerStatus
from ttg_lab.leaderboard import SORTABLE, VERDICTS, BoardVerdict
from ttg_lab.market.bars import BAR_LABELS, INTERVALS, BarLabel
from ttg_lab.market.bars import MODES as _MODES
from ttg_lab.market.markets import MARKETS as _MARKETS
from ttg_lab.model_rules import RULE_PRESETS as _RULE_PRESETS
from ttg_lab.profiles import EXPERIENCE, RISK_TOLERANCE
from ttg_lab.rules.gate import VERDICTS as GATE_VERDICTS
from ttg_lab.rules.gate import Verdict
from ttg_lab.rules.params import CATEGORIES as RULE_CATEGORIES
from ttg_lab.rules.params import RULE_PARAMS
from ttg_lab.store.schema import RunStatus
from ttg_lab.users import ROLES

MODES: tuple[str, ...] = tuple(_MODES)
"""Run modes: ``daily`` runs on daily bars, ``intraday`` on hourly ones."""

COST_PRESETS: tuple[str, ...] = tuple(_COST_PRESETS)
"""Named cost models for ``start_run(costs=...)`` (a dict of fields works too)."""

RULE_PRESETS: tuple[str, ...] = tuple(_RULE_PRESETS)
"""Named rule sets for ``lab.rules.apply_preset(model, name)``."""

RULE_PARAMETERS: tuple[str, ...] = tuple(RULE_PARAMS)
"""Every rule parameter a rule, a profile limit or a global default may set."""

MARKETS: tuple[str, ...] = tuple(_MARKETS)
"""Market codes a model trades in."""

LEADERBOARD_SORTS: tuple[str, ...] = tuple(sorted(SORTABLE))
"""Columns ``lab.leaderboard(sort=...)`` ranks by."""

DATA_FORMAT_AUTO = "auto"
"""The format name that lets the file's content pick its reader."""


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
    "LEADERBOARD_SORTS",
    "MARKETS",
    "MODES",
    "RISK_TOLERANCE",
    "ROLES",
    "RULE_CATEGORIES",
    "RULE_PARAMETERS",
    "RULE_PRESETS",
    "VERDICTS",
    "BarLabel",
    "BoardVerdict",
    "LedgerStatus",
    "RunStatus",
    "Verdict",
    "bar_formats",
    "baselines",
    "check_path",
    "llm_providers",
    "news_formats",
    "policies",
    "tool_modes",
]
