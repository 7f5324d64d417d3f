"""ttg_lab.options lists every choice from its owner: adding one there adds it here."""

from __future__ import annotations

from typing import get_args

import ttg_lab
from ttg_lab import options
from ttg_lab.agents.policy import POLICIES, MarketView, Order
from ttg_lab.broker.costs import COST_PRESETS
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
