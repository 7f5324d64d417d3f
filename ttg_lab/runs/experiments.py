"""Experiments: ``repeats`` runs of one model over one period and mode, seeds
``seed + 0 .. seed + repeats - 1``, recorded together so the leaderboard's intervals come
from them. :meth:`~ttg_lab.runs.service.RunService.start_repeats` starts one; this module
reads them (each user only their own, see :mod:`ttg_lab.store.access`).

A memorisation gap (:meth:`~ttg_lab.runs.service.RunService.start_gap`) is two
experiments of one model, period, mode and seeds, one unmasked and one masked, whose
options hold ``gap`` (the gap's id: the unmasked arm's experiment id) and ``arm``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.store.access import check_experiment, visible_experiments
from ttg_lab.store.database import Store
from ttg_lab.store.schema import ExperimentRow, TradingModel, TradingRun, User

MAX_REPEATS = 100
"""Most repeats one experiment may ask for (each is a full run)."""


def check_repeats(repeats: object) -> int:
    """``repeats`` when it is a whole number from 1 to :data:`MAX_REPEATS`."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise ValidationError(
            f"repeats must be a whole number from 1 to {MAX_REPEATS}, got {repeats!r}"
        )
    return repeats


@dataclass(frozen=True)
class ExperimentInfo:
    """An experiment as stored: what its repeats share, and its runs' ids in repeat order."""

    id: int
    name: str
    model: str  # the model's signature
    repeats: int
    mode: str
    start: datetime
    end: datetime
    seed: int  # the first repeat's; repeat i has seed + i
    options: dict[str, Any]
    created_at: datetime
    run_ids: tuple[int, ...]


def read_experiment(store: Store, user: User, experiment_id: int) -> ExperimentInfo:
    """One of ``user``'s experiments (NotFoundError for any other id)."""
    check_experiment(store, user, experiment_id)
    return _read(store, user, experiment_id)[0]


def list_experiments(store: Store, user: User) -> list[ExperimentInfo]:
    """``user``'s experiments, newest first."""
    return _read(store, user, None)


@dataclass(frozen=True)
class GapInfo:
    """A memorisation gap as stored: its id (the unmasked arm's experiment id) and its two
    arms, experiments of the same model, period, mode and seeds."""

    id: int
    unmasked: ExperimentInfo
    masked: ExperimentInfo


def read_gap(store: Store, user: User, gap_id: int) -> GapInfo:
    """One of ``user``'s memorisation gaps (NotFoundError for any other id, naming the gap
    an experiment that is a gap's masked arm belongs to)."""
    try:
        check_experiment(store, user, gap_id)
    except NotFoundError:
        raise NotFoundError(f"no memorisation gap {gap_id!r}") from None
    gaps = list_gaps(store, user)
    for gap in gaps:
        if gap.id == gap_id:
            return gap
    arm_of = [gap.id for gap in gaps if gap.masked.id == gap_id]
    what = f"the masked arm of gap {arm_of[0]}" if arm_of else "not one"
    raise NotFoundError(f"no memorisation gap {gap_id} (experiment {gap_id} is {what})")


def list_gaps(store: Store, user: User) -> list[GapInfo]:
    """``user``'s memorisation gaps, newest first."""
    return _gaps(list_experiments(store, user))


def board_gaps(store: Store, model_ids: Sequence[int]) -> list[GapInfo]:
    """The memorisation gaps of these models, newest first: for the leaderboard, whose
    rows are already limited to the models it may show (and shows their runs)."""
    return _gaps(_read(store, None, None, model_ids=model_ids))


def _gaps(experiments: list[ExperimentInfo]) -> list[GapInfo]:
    """The gaps whose two arms are among ``experiments`` (newest first)."""
    arms: dict[tuple[int, str], ExperimentInfo] = {}
    for info in experiments:
        gap, arm = info.options.get("gap"), info.options.get("arm")
        if isinstance(gap, int) and arm in ("unmasked", "masked"):
            arms[gap, arm] = info
    return [
        GapInfo(gap, arms[gap, "unmasked"], arms[gap, "masked"])
        for gap in sorted({gap for gap, _ in arms}, reverse=True)
        if (gap, "unmasked") in arms and (gap, "masked") in arms
    ]


def _read(
    store: Store,
    user: User | None,
    experiment_id: int | None,
    *,
    model_ids: Sequence[int] | None = None,
) -> list[ExperimentInfo]:
    """Experiments ``user`` may see (None: any, of ``model_ids``): one or all, newest
    first."""
    query = select(ExperimentRow, TradingModel.signature).join(
        TradingModel, TradingModel.id == ExperimentRow.model_id
    )
    if user is not None:
        query = visible_experiments(user, query)
    if model_ids is not None:
        query = query.where(ExperimentRow.model_id.in_(list(model_ids)))
    if experiment_id is not None:
        query = query.where(ExperimentRow.id == experiment_id)
    with store.session() as session:
        rows = session.execute(query.order_by(ExperimentRow.id.desc())).all()
        ids = [row.id for row, _ in rows]
        runs: dict[int, list[int]] = {i: [] for i in ids}
        for run_id, owner in session.execute(
            select(TradingRun.id, TradingRun.experiment_id)
            .where(TradingRun.experiment_id.in_(ids))
            .order_by(TradingRun.id)
        ):
            if owner is not None:  # always: the query asked for these experiments
                runs[owner].append(run_id)
        return [
            ExperimentInfo(
                id=row.id,
                name=row.name,
                model=signature,
                repeats=row.repeats,
                mode=row.mode,
                start=row.period_start,
                end=row.period_end,
                seed=row.seed,
                options=dict(row.options or {}),
                created_at=row.created_at,
                run_ids=tuple(runs[row.id]),
            )
            for row, signature in rows
        ]
