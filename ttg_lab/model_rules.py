"""Models' rules: create, read, update, delete, apply presets, and combine them with the
owner's profile and the global settings into what a run enforces.

Everything is validated before anything is written; a bad value names itself and leaves
the store unchanged. The profile (:mod:`ttg_lab.profiles`, ``lab.profile``) and the global
settings (:mod:`ttg_lab.global_settings`, ``lab.settings``) have sub-APIs of their own.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.global_settings import read_settings
from ttg_lab.models import ModelInfo, ModelService
from ttg_lab.profiles import profile_limits, read_profile
from ttg_lab.rules.constraints import Constraint, RuleSet, combine
from ttg_lab.rules.params import (
    RULE_PARAMS,
    validate_params,
    validate_rule_fields,
    validate_scope,
)
from ttg_lab.store.access import check_run
from ttg_lab.store.database import Store
from ttg_lab.store.schema import (
    GateDecisionRow,
    ModelRule,
    User,
)
from ttg_lab.text import refuse_secrets

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
    """Structured rules of models: CRUD, presets, gate decisions and what a run enforces."""

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
        profile = read_profile(self.store, info.owner_id)  # the owner's limits bind their runs
        limits = profile_limits(profile)
        if profile["saved"] and not profile["short_selling_allowed"]:
            limits["allow_short"] = False
        settings = read_settings(self.store)
        return combine(
            rules, limits or None, settings.get("rules.ceilings"), settings.get("rules.defaults")
        )


__all__ = ["RULE_PARAMS", "RULE_PRESETS", "RuleInfo", "RuleService"]
