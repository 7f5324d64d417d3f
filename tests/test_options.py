"""ttg_lab.options lists every choice from its owner: adding one there adds it here."""

from __future__ import annotations

from typing import get_args

import pytest
from click.testing import CliRunner
from support.imports import loaded_after

import ttg_lab
from ttg_lab import options
from ttg_lab.agents.policy import POLICIES, MarketView, Order
from ttg_lab.broker.costs import COST_PRESETS
from ttg_lab.cli import main
from ttg_lab.leaderboard import verdict
from ttg_lab.market.bars import MODES


class Hold(ttg_lab.Policy):
    """Never trades."""

    def decide(self, market: MarketView) -> list[Order]:
        return []


def test_a_registered_policy_shows_up_among_the_choices_at_call_time() -> None:
    assert "policy/optionsHold" not in options.policies()
    try:
        ai_model_id = ttg_lab.register_policy("optionsHold", Hold)
        assert ai_model_id in options.policies()
        assert ai_model_id not in options.baselines()
        assert set(options.baselines()) < set(options.policies())
    finally:
        POLICIES._items.pop("policy/optionsHold", None)


def test_static_choices_are_the_owners_lists() -> None:
    assert tuple(MODES) == options.MODES
    assert tuple(COST_PRESETS) == options.COST_PRESETS
    assert options.bar_formats()[0] == options.news_formats()[0] == options.DATA_FORMAT_AUTO
    assert options.GATE_VERDICTS == get_args(options.Verdict) == ("allow", "resize", "reject")
    said = {verdict({}), verdict({"benchmark_return": 0.1, "beats_benchmark": True})}
    assert said <= set(options.VERDICTS)


RUN_MACHINERY = (
    "sqlalchemy",
    "ttg_lab.store",
    "ttg_lab.engine",
    "ttg_lab.agents",
    "ttg_lab.runs",
    "ttg_lab.lab",
    "langchain_core",
    "fastmcp",
    "mcp",
)
"""What neither the options nor the command line's start may load: the store, the run
machinery and the chat path (they load when a command or a choice needs them)."""


def test_importing_the_options_or_the_command_line_loads_no_run_machinery() -> None:
    for code in ("import ttg_lab.options", "import ttg_lab.cli", "from ttg_lab.cli import main"):
        assert loaded_after(code, *RUN_MACHINERY) == [], code


def test_ttg_lab_help_loads_no_run_machinery() -> None:
    code = "import sys\nfrom ttg_lab.cli import main\nsys.argv = ['ttg-lab', '--help']\nmain()"
    assert loaded_after(code, *RUN_MACHINERY) == []


def test_every_declared_choice_loads_from_its_owner_and_a_typo_is_named() -> None:
    for name in options._CHOICES:
        assert getattr(options, name) is not None, name
    assert options.AGENT_PATHS == ("chat", "direct")
    assert options.ROLES == ("admin", "user")
    assert tuple(sorted(options.LEADERBOARD_SORTS)) == options.LEADERBOARD_SORTS
    with pytest.raises(AttributeError, match="'MODE'"):
        _ = options.MODE  # type: ignore[attr-defined]


def test_the_command_lines_choices_are_checked_and_shown_from_the_options() -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["leaderboard", "--mode", "weekly"])
    assert bad.exit_code == 2 and "'weekly' is not one of 'daily', 'intraday'" in bad.output
    shown = runner.invoke(main, ["run", "--help"]).output
    assert "[daily|intraday]" in shown and "[chat|direct]" in shown
    assert f"a cost preset: {', '.join(options.COST_PRESETS)}" in " ".join(shown.split())
    assert ", ".join(options.MARKETS) in runner.invoke(main, ["data", "load", "--help"]).output


def test_the_leaderboard_summary_and_rule_attribution_each_have_one_home() -> None:
    from ttg_lab.leaderboard import BOARD_COLUMNS

    assert set(options.LEADERBOARD_SUMMARY) <= set(BOARD_COLUMNS)
    assert options.LEADERBOARD_SUMMARY[:2] == ("model", "group")
    assert hasattr(ttg_lab.Run, "attribution") and not hasattr(ttg_lab.Lab, "attribution")
