"""Global settings: platform-wide values in the store that only admins change (the rules'
defaults and ceilings, the analyst's model, whether the leaderboard is public...)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import select

from ttg_lab.engine.budget import SETTING_CHECKS
from ttg_lab.errors import ValidationError
from ttg_lab.rules.params import validate_params
from ttg_lab.store.access import require_admin
from ttg_lab.store.database import Store
from ttg_lab.store.schema import GlobalSetting, User
from ttg_lab.text import refuse_secrets

RULE_SETTINGS = ("rules.defaults", "rules.ceilings")
"""Settings that hold rule parameters (validated like a rule's)."""


def read_settings(store: Store) -> dict[str, Any]:
    """Every global setting, by key."""
    with store.session() as session:
        return {row.key: row.value for row in session.scalars(select(GlobalSetting))}


def set_setting(store: Store, user: User, key: str, value: Any) -> None:
    """Set a platform-wide setting (admins only). Rule defaults and ceilings are
    validated like rule parameters, the runs' default LLM caps like a run's."""
    require_admin(user, "changing global settings")
    if not isinstance(key, str) or not key.strip():
        raise ValidationError("a setting needs a key")
    refuse_secrets({key: value}, "setting")
    if key in RULE_SETTINGS:
        value = validate_params(value) if value else {}
    if key in SETTING_CHECKS:
        value = SETTING_CHECKS[key](value, key)
    with store.session() as session:
        row = session.get(GlobalSetting, key)
        if row is None:
            session.add(GlobalSetting(key=key, value=value, updated_by=user.id))
        else:
            row.value, row.updated_by = value, user.id


class GlobalSettings:
    """The global settings as ``lab.settings``: everyone reads them, only admins change
    them."""

    def __init__(self, store: Store, user: User) -> None:
        self.store = store
        self.user = user

    def get(self, key: str, default: Any = None) -> Any:
        """The value of setting ``key`` (``default`` when it was never set)."""
        return self.all().get(key, default)

    def all(self) -> dict[str, Any]:
        """Every setting, by key."""
        return read_settings(self.store)

    def set(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` (admins only; see :func:`set_setting`)."""
        set_setting(self.store, self.user, key, value)

    def table(self) -> pd.DataFrame:
        """Every setting as a row: key, value, who changed it last and when."""
        columns = ["key", "value", "updated_by", "updated_at"]
        with self.store.session() as session:
            rows = session.scalars(select(GlobalSetting).order_by(GlobalSetting.key)).all()
            return pd.DataFrame([[getattr(r, c) for c in columns] for r in rows], columns=columns)
