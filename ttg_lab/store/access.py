"""Who may see and change what: one place for ownership and admin checks.

Every model has an owner and every run belongs to a model. A lab acts as one user: an
ordinary user changes only what they own and sees that plus shared models (read-only);
an admin sees and changes everything. Objects a user may not see are reported as not
found, so ids of other users' work reveal nothing; changing a shared model they can see
is refused with PermissionDeniedError. On PostgreSQL, row-level security (migration 0006) applies
the same rule in the database for connections made as a user's own role.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import Select, or_, select

from ttg_lab.errors import NotFoundError, PermissionDeniedError
from ttg_lab.store.database import Store
from ttg_lab.store.schema import ExperimentRow, TradingModel, TradingRun, User

Query = TypeVar("Query", bound=Select)  # type: ignore[type-arg]

LEADERBOARD_PUBLIC = "leaderboard.public"
"""Global setting: when true, every user's leaderboard ranks all models (read-only)."""


def is_admin(user: User) -> bool:
    return user.role == "admin" and bool(user.approved)


def require_admin(user: User, action: str) -> None:
    """Raise unless ``user`` is an approved admin."""
    if not is_admin(user):
        raise PermissionDeniedError(
            f"{action} needs an admin; {user.username or user.email} is a {user.role}"
        )


def visible_models(user: User, query: Query) -> Query:
    """``query`` (over ``models``) narrowed to what ``user`` may see: theirs and shared."""
    if is_admin(user):
        return query
    return query.where(or_(TradingModel.owner_id == user.id, TradingModel.shared.is_(True)))


def check_owner(user: User, owner_id: int, what: str) -> None:
    """Raise unless ``user`` may change ``what`` (owned by ``owner_id``)."""
    if owner_id != user.id and not is_admin(user):
        raise PermissionDeniedError(f"{what} is shared with you read-only; it is not yours")


def check_run(store: Store, user: User, run_id: int, change: bool = False) -> int:
    """The model id of run ``run_id`` when ``user`` may see it (``change``: and change
    it); NotFoundError when they may not see it."""
    if isinstance(run_id, bool) or not isinstance(run_id, int):
        raise NotFoundError(f"no run {run_id!r}: run ids are whole numbers")
    query = visible_models(
        user,
        select(TradingRun.model_id, TradingModel.owner_id)
        .join(TradingModel, TradingModel.id == TradingRun.model_id)
        .where(TradingRun.id == run_id),
    )
    with store.session() as session:
        row = session.execute(query).first()
    if row is None:
        raise NotFoundError(f"no run {run_id}")
    if change:
        check_owner(user, row.owner_id, f"run {run_id}")
    return int(row.model_id)


def visible_experiments(user: User, query: Query) -> Query:
    """``query`` (over ``experiments``) narrowed to what ``user`` may see: their own
    (admins: every one). Unlike models, experiments are never shared."""
    if is_admin(user):
        return query
    return query.where(ExperimentRow.owner_id == user.id)


def check_experiment(store: Store, user: User, experiment_id: int) -> None:
    """NotFoundError unless ``user`` may see experiment ``experiment_id``."""
    if isinstance(experiment_id, bool) or not isinstance(experiment_id, int):
        raise NotFoundError(f"no experiment {experiment_id!r}: experiment ids are whole numbers")
    query = visible_experiments(
        user, select(ExperimentRow.id).where(ExperimentRow.id == experiment_id)
    )
    with store.session() as session:
        if session.execute(query).first() is None:
            raise NotFoundError(f"no experiment {experiment_id}")


def leaderboard_owners(user: User, public: bool) -> list[int] | None:
    """Owners whose models a user's leaderboard ranks besides the shared ones (None:
    everyone's)."""
    return None if public or is_admin(user) else [user.id]
