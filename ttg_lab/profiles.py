"""Trading profiles: each user's experience, risk tolerance and the limits that bind every
run of their models (the limits become rules of those runs: see
:meth:`ttg_lab.model_rules.RuleService.effective`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ttg_lab.errors import ValidationError
from ttg_lab.rules.params import validate_params
from ttg_lab.store.access import require_admin
from ttg_lab.store.database import Store
from ttg_lab.store.schema import User, UserTradingProfile
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


def read_profile(store: Store, user_id: int) -> dict[str, Any]:
    """User ``user_id``'s trading profile (defaults, ``saved`` false, when none was saved)."""
    with store.session() as session:
        row = session.scalars(
            select(UserTradingProfile).where(UserTradingProfile.user_id == user_id)
        ).first()
        return _profile_dict(row)


def profile_limits(profile: dict[str, Any]) -> dict[str, Any]:
    """The rule parameters a profile's limits set (only the limits it sets)."""
    return {
        PROFILE_FIELDS[k]: v
        for k, v in profile.items()
        if k in PROFILE_FIELDS and v not in (None, {})
    }


def update_profile(store: Store, user: User, **changes: Any) -> dict[str, Any]:
    """Change ``user``'s own profile; validated as a whole before saving."""
    refuse_secrets(changes, "profile")
    known = set(_profile_dict(None)) - {"saved"}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValidationError(
            f"unknown profile field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    merged = {**read_profile(store, user.id), **changes}
    merged.pop("saved")
    if merged["experience"] not in EXPERIENCE:
        raise ValidationError(f"experience must be one of {', '.join(EXPERIENCE)}")
    if merged["risk_tolerance"] not in RISK_TOLERANCE:
        raise ValidationError(f"risk_tolerance must be one of {', '.join(RISK_TOLERANCE)}")
    for flag in ("options_allowed", "short_selling_allowed"):
        if not isinstance(merged[flag], bool):
            raise ValidationError(f"{flag} must be true or false")
    limits = profile_limits(merged)
    if limits:
        validate_params(limits)
    with store.session() as session:
        row = session.scalars(
            select(UserTradingProfile).where(UserTradingProfile.user_id == user.id)
        ).first()
        if row is None:
            row = UserTradingProfile(user_id=user.id)
            session.add(row)
        for key, value in merged.items():
            setattr(row, key, value)
        session.flush()
        return _profile_dict(row)


def reset_profile(store: Store, user: User) -> dict[str, Any]:
    """Forget ``user``'s saved profile: the defaults (no limits of their own) apply again."""
    with store.session() as session:
        row = session.scalars(
            select(UserTradingProfile).where(UserTradingProfile.user_id == user.id)
        ).first()
        if row is not None:
            session.delete(row)
    return _profile_dict(None)


class TradingProfile:
    """The user's trading profile as ``lab.profile``: limits that bind every run of their
    models (an admin may read anyone's)."""

    def __init__(self, store: Store, user: User) -> None:
        self.store = store
        self.user = user

    def show(self, user_id: int | None = None) -> dict[str, Any]:
        """The profile (defaults, ``saved`` false, when none was saved); another user's
        only for an admin."""
        if user_id not in (None, self.user.id):
            require_admin(self.user, "reading another user's trading profile")
        return read_profile(self.store, user_id or self.user.id)

    def update(self, **limits: Any) -> dict[str, Any]:
        """Change fields of your own profile; validated as a whole before saving."""
        return update_profile(self.store, self.user, **limits)

    def reset(self) -> dict[str, Any]:
        """Back to the defaults: your runs are bound by no limits of your own."""
        return reset_profile(self.store, self.user)


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
