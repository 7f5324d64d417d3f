"""lab.settings (global settings) and lab.profile (the user's trading profile) as sub-APIs
of their own; lab.rules holds models' rules only."""

from __future__ import annotations

import pytest

from ttg_lab.errors import PermissionDeniedError, ValidationError
from ttg_lab.lab import Lab


def test_settings_get_set_and_table_show_what_an_admin_saved(lab: Lab) -> None:
    assert lab.settings.get("leaderboard.public") is None
    assert lab.settings.get("leaderboard.public", False) is False
    lab.settings.set("leaderboard.public", True)
    lab.settings.set("rules.ceilings", {"max_position_pct": 30})
    assert lab.settings.get("leaderboard.public") is True
    assert lab.settings.all() == {
        "leaderboard.public": True,
        "rules.ceilings": {"max_position_pct": 30.0},
    }
    table = lab.settings.table()
    assert list(table.columns) == ["key", "value", "updated_by", "updated_at"]
    assert table["key"].tolist() == ["leaderboard.public", "rules.ceilings"]
    assert table["updated_by"].tolist() == [lab.user.id, lab.user.id]


def test_only_an_admin_sets_a_setting_and_a_refused_one_changes_nothing(lab: Lab) -> None:
    lab.settings.set("leaderboard.public", False)
    lab.user.role = "user"
    with pytest.raises(PermissionDeniedError, match="changing global settings needs an admin"):
        lab.settings.set("leaderboard.public", True)
    lab.user.role = "admin"
    with pytest.raises(ValidationError, match="unknown rule parameter"):
        lab.settings.set("rules.defaults", {"max_leverage": 3})
    assert lab.settings.all() == {"leaderboard.public": False}


def test_profile_reset_frees_the_users_runs_from_its_limits(lab: Lab) -> None:
    model = lab.models.create("bound", ai_model_id="baseline/buy_and_hold", tickers=["AAPL"])
    saved = lab.profile.update(max_position_pct=20, risk_tolerance="conservative")
    assert saved["saved"] and saved["max_position_pct"] == 20
    assert lab.profile.show() == saved
    origins = {c.origin for c in lab.rules.effective(model).constraints}
    assert "profile" in origins
    defaults = lab.profile.reset()
    assert defaults["saved"] is False and defaults["max_position_pct"] is None
    assert lab.profile.show() == defaults
    assert "profile" not in {c.origin for c in lab.rules.effective(model).constraints}
    assert lab.profile.reset() == defaults  # resetting twice is harmless


def test_a_bad_profile_update_names_the_field_and_saves_nothing(lab: Lab) -> None:
    with pytest.raises(ValidationError, match=r"unknown profile field.*max_leverage"):
        lab.profile.update(max_position_pct=20, max_leverage=3)
    with pytest.raises(ValidationError, match="risk_tolerance must be one of"):
        lab.profile.update(max_position_pct=20, risk_tolerance="reckless")
    assert lab.profile.show()["saved"] is False


def test_rules_hold_models_rules_only(lab: Lab) -> None:
    for shim in ("profile", "update_profile", "settings", "set_setting"):
        assert not hasattr(lab.rules, shim), shim
    assert lab.config.db_url == lab.store.engine.url.render_as_string(hide_password=False)
