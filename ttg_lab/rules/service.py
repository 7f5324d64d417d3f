"""Rules, trading profiles and global settings: create, read, update, delete.

Everything is validated before anything is written; a bad value names itself and leaves
the store unchanged. Global settings are for admins only.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.models import ModelInfo, ModelService
from ttg_lab.rules.constraints import Constraint, RuleSet, combine
from ttg_lab.rules.params import (
    RULE_PARAMS,
    validate_params,
    validate_rule_fields,
    validate_scope,
)
from ttg_lab.store.access import check_run, require_admin
from ttg_lab.store.database import Store
from ttg_lab.store.schema import (
    GateDecisionRow,
    GlobalSetting,
    ModelRule,
    User,
    UserTradingProfile,
)
from ttg_lab.text import refuse_secrets

PROFILE_FIELDS: dict[str, str] = {
    "max_position_pct": "max_position_pct",
    "max_open_positions": "max_open_positions",
    "daily_loss_stop_pct": "max_daily_loss_pct",
    "min_cash_reserve_pct": "min_cash_reserve_pct",
    "trading_hours": "trading_hours",
}
"""Profile fields that are limits, and the rule parameter each one becomes."""

EXPERIENCE = ("beginner", "intermediate", "advanced", "professional")
RISK_TOLERANCE = ("conservative", "moderate", "aggressive")
RULE_SETTINGS = ("rules.defaults", "rules.ceilings")

RULE_PRESETS: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "conservative": [
        {
            "name": "position cap",
            "category": "position_sizing",
            "parameters": {"max_position_pct": 10, "max_open_positions": 15},
        },
        {"name": "cash reserve", "category": "risk", "parameters": {"min_cash_reserve_pct": 10}},
        {"name": "stop loss", "category": "risk", "parameters": {"stop_loss_pct": 8}},
        {"name": "drawdown halt", "category": "risk", "parameters": {"max_drawdown_pct": 15}},
    ],
    "strict": [
        {
            "name": "position cap",
            "category": "position_sizing",
            "priority": 9,
            "parameters": {"max_position_pct": 5, "max_open_positions": 10, "max_order_pct": 5},
        },
        {
            "name": "daily limits",
            "category": "risk",
            "priority": 8,
            "parameters": {"max_trades_per_day": 10, "max_daily_loss_pct": 2},
        },
        {"name": "stop loss", "category": "risk", "parameters": {"stop_loss_pct": 5}},
        {"name": "drawdown halt", "category": "risk", "parameters": {"max_drawdown_pct": 8}},
        {"name": "no shorting", "category": "compliance", "parameters": {"allow_short": False}},
    ],
}
"""Named rule sets for experiments (``lab.rules.apply_preset(model, name)``)."""


@dataclass(frozen=True)
class RuleInfo:
    """A read-only copy of a model rule."""

    id: int
    model_id: int
    name: str
    category: str
    description: str
    parameters: dict[str, Any]
    scope: dict[str, Any]
    priority: int
    active: bool

    @classmethod
    def of(cls, row: ModelRule) -> RuleInfo:
        return cls(
            row.id,
            row.model_id,
            row.name,
            row.category,
            row.description,
            dict(row.parameters),
            dict(row.scope),
            row.priority,
            row.active,
        )

    def constraint(self) -> Constraint:
        return Constraint(
            self.name, "model", self.parameters, self.scope, self.priority, self.category, self.id
        )


class RuleService:
    """Structured rules of models, the user's trading profile and global settings."""

    def __init__(self, store: Store, models: ModelService, user: User) -> None:
        self.store = store
        self.models = models
        self.user = user

    # -- model rules ---------------------------------------------------------------
    def add(
        self,
        model: int | str | ModelInfo,
        name: str,
        parameters: dict[str, Any],
        category: str = "risk",
        description: str = "",
        scope: dict[str, Any] | None = None,
        priority: int = 5,
        active: bool = True,
    ) -> RuleInfo:
        """A new rule for ``model`` (one of the user's own), validated first."""
        info = self.models.owned(model)
        refuse_secrets({"parameters": parameters, "scope": scope or {}}, "rule")
        name, category, priority, description = validate_rule_fields(
            name, category, priority, description
        )
        params = validate_params(parameters)
        checked_scope = validate_scope(scope)
        if not isinstance(active, bool):
            raise ValidationError("active must be true or false")
        try:
            with self.store.session() as session:
                row = ModelRule(
                    model_id=info.id,
                    name=name,
                    category=category,
                    description=description,
                    parameters=params,
                    scope=checked_scope,
                    priority=priority,
                    active=active,
                )
                session.add(row)
                session.flush()
                return RuleInfo.of(row)
        except IntegrityError:
            raise ValidationError(
                f"model {info.signature} already has a rule named {name!r}"
            ) from None

    def list(self, model: int | str | ModelInfo) -> list[RuleInfo]:
        info = self.models.get(model)
        with self.store.session() as session:
            rows = session.scalars(
                select(ModelRule)
                .where(ModelRule.model_id == info.id)
                .order_by(ModelRule.priority.desc(), ModelRule.name)
            )
            return [RuleInfo.of(r) for r in rows]

    def frame(self, model: int | str | ModelInfo) -> pd.DataFrame:
        return pd.DataFrame([vars(r) for r in self.list(model)])

    def get(self, model: int | str | ModelInfo, name: str) -> RuleInfo:
        for rule in self.list(model):
            if rule.name == name:
                return rule
        raise NotFoundError(f"no rule named {name!r} on model {self.models.get(model).signature}")

    def update(self, model: int | str | ModelInfo, name: str, **changes: Any) -> RuleInfo:
        """Change a rule; validated as a whole before saving."""
        allowed = {"name", "category", "description", "parameters", "scope", "priority", "active"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ValidationError(f"cannot edit rule field(s): {', '.join(unknown)}")
        self.models.owned(model)
        refuse_secrets(changes, "rule")
        current = self.get(model, name)
        merged = {**vars(current), **changes}
        new_name, category, priority, description = validate_rule_fields(
            merged["name"], merged["category"], merged["priority"], merged["description"]
        )
        params = validate_params(merged["parameters"])
        scope = validate_scope(merged["scope"])
        if not isinstance(merged["active"], bool):
            raise ValidationError("active must be true or false")
        try:
            with self.store.session() as session:
                row = session.get(ModelRule, current.id)
                assert row is not None
                row.name, row.category, row.priority, row.description = (
                    new_name,
                    category,
                    priority,
                    description,
                )
                row.parameters, row.scope, row.active = params, scope, merged["active"]
                session.flush()
                return RuleInfo.of(row)
        except IntegrityError:
            raise ValidationError(f"another rule is already named {new_name!r}") from None

    def remove(self, model: int | str | ModelInfo, name: str) -> None:
        self.models.owned(model)
        rule = self.get(model, name)
        with self.store.session() as session:
            row = session.get(ModelRule, rule.id)
            if row is not None:
                session.delete(row)

    def apply_preset(self, model: int | str | ModelInfo, preset: str) -> builtins.list[RuleInfo]:
        """Add the rules of a named preset (all or nothing)."""
        self.models.owned(model)
        if preset not in RULE_PRESETS:
            raise ValidationError(
                f"unknown rule preset {preset!r}; known: {', '.join(RULE_PRESETS)}"
            )
        for spec in RULE_PRESETS[preset]:  # validate everything before writing anything
            validate_params(spec["parameters"])
        existing = {r.name for r in self.list(model)}
        clash = [s["name"] for s in RULE_PRESETS[preset] if s["name"] in existing]
        if clash:
            raise ValidationError(f"model already has rule(s) named {', '.join(clash)}")
        return [self.add(model, **spec) for spec in RULE_PRESETS[preset]]

    # -- profile ---------------------------------------------------------------------
    def profile(self, user_id: int | None = None) -> dict[str, Any]:
        """The user's trading profile (defaults when none was saved); another user's
        only for an admin."""
        if user_id not in (None, self.user.id):
            require_admin(self.user, "reading another user's trading profile")
        return self._profile_of(user_id or self.user.id)

    def _profile_of(self, user_id: int) -> dict[str, Any]:
        with self.store.session() as session:
            row = session.scalars(
                select(UserTradingProfile).where(UserTradingProfile.user_id == user_id)
            ).first()
            return _profile_dict(row)

    def update_profile(self, **changes: Any) -> dict[str, Any]:
        """Change the current user's profile; validated before saving."""
        refuse_secrets(changes, "profile")
        known = set(_profile_dict(None)) - {"saved"}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValidationError(
                f"unknown profile field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        merged = {**self.profile(), **changes}
        merged.pop("saved")
        if merged["experience"] not in EXPERIENCE:
            raise ValidationError(f"experience must be one of {', '.join(EXPERIENCE)}")
        if merged["risk_tolerance"] not in RISK_TOLERANCE:
            raise ValidationError(f"risk_tolerance must be one of {', '.join(RISK_TOLERANCE)}")
        for flag in ("options_allowed", "short_selling_allowed"):
            if not isinstance(merged[flag], bool):
                raise ValidationError(f"{flag} must be true or false")
        limits = {
            PROFILE_FIELDS[k]: v
            for k, v in merged.items()
            if k in PROFILE_FIELDS and v not in (None, {})
        }
        if limits:
            validate_params(limits)
        with self.store.session() as session:
            row = session.scalars(
                select(UserTradingProfile).where(UserTradingProfile.user_id == self.user.id)
            ).first()
            if row is None:
                row = UserTradingProfile(user_id=self.user.id)
                session.add(row)
            for key, value in merged.items():
                setattr(row, key, value)
            session.flush()
            return _profile_dict(row)

    # -- global settings -------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        with self.store.session() as session:
            return {row.key: row.value for row in session.scalars(select(GlobalSetting))}

    def set_setting(self, key: str, value: Any) -> None:
        """Set a platform-wide setting (admins only). Rule defaults and ceilings are
        validated like rule parameters."""
        require_admin(self.user, "changing global settings")
        if not isinstance(key, str) or not key.strip():
            raise ValidationError("a setting needs a key")
        refuse_secrets({key: value}, "setting")
        if key in RULE_SETTINGS:
            value = validate_params(value) if value else {}
        with self.store.session() as session:
            row = session.get(GlobalSetting, key)
            if row is None:
                session.add(GlobalSetting(key=key, value=value, updated_by=self.user.id))
            else:
                row.value, row.updated_by = value, self.user.id

    def attribution(self, run_id: int) -> pd.DataFrame:
        """Per rule of a run: orders blocked, resized, forced, and the counterfactual P&L."""
        from ttg_lab.rules.attribution import attribution

        check_run(self.store, self.user, run_id)
        return attribution(self.store, run_id)

    def decisions(self, run_id: int) -> pd.DataFrame:
        """Every gate decision of a run, in order."""
        check_run(self.store, self.user, run_id)
        with self.store.session() as session:
            rows = session.scalars(
                select(GateDecisionRow)
                .where(GateDecisionRow.run_id == run_id)
                .order_by(GateDecisionRow.id)
            ).all()
            columns = [
                "step_index",
                "ts",
                "order_id",
                "origin",
                "action",
                "symbol",
                "requested",
                "quantity",
                "verdict",
                "firings",
                "portfolio",
            ]
            return pd.DataFrame(
                [{c: getattr(r, c) for c in columns} for r in rows], columns=columns
            )

    # -- what a run enforces ---------------------------------------------------------
    def effective(self, model: int | str | ModelInfo) -> RuleSet:
        """The combined constraints a new run of ``model`` will enforce."""
        info = self.models.get(model)
        rules = [r.constraint() for r in self.list(info) if r.active]
        profile = self._profile_of(info.owner_id)  # the owner's limits bind their runs
        limits = {
            PROFILE_FIELDS[k]: v
            for k, v in profile.items()
            if k in PROFILE_FIELDS and v not in (None, {})
        }
        if profile["saved"] and not profile["short_selling_allowed"]:
            limits["allow_short"] = False
        settings = self.settings()
        return combine(
            rules, limits or None, settings.get("rules.ceilings"), settings.get("rules.defaults")
        )


def _profile_dict(row: UserTradingProfile | None) -> dict[str, Any]:
    if row is None:
        return {
            "saved": False,
            "experience": "intermediate",
            "risk_tolerance": "moderate",
            "max_position_pct": None,
            "max_open_positions": None,
            "daily_loss_stop_pct": None,
            "min_cash_reserve_pct": None,
            "trading_hours": {},
            "options_allowed": False,
            "short_selling_allowed": False,
        }
    return {
        "saved": True,
        "experience": row.experience,
        "risk_tolerance": row.risk_tolerance,
        "max_position_pct": row.max_position_pct,
        "max_open_positions": row.max_open_positions,
        "daily_loss_stop_pct": row.daily_loss_stop_pct,
        "min_cash_reserve_pct": row.min_cash_reserve_pct,
        "trading_hours": dict(row.trading_hours or {}),
        "options_allowed": row.options_allowed,
        "short_selling_allowed": row.short_selling_allowed,
    }


__all__ = ["RULE_PARAMS", "RULE_PRESETS", "RuleInfo", "RuleService"]
