"""Run numbers: each model's runs are numbered 1, 2, 3... in the transaction that writes
the run, for the runs of this lab and the runs imported from AI-Trader alike.

Two processes may take the same next number at once; the store's unique (model, run
number) constraint refuses the second, which then writes its transaction again with the
number after.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ttg_lab.errors import NotFoundError, RunStateError
from ttg_lab.store.database import Store
from ttg_lab.store.schema import TradingModel, TradingRun

ATTEMPTS = 5
"""How often a transaction that numbers a run is written before giving up."""

T = TypeVar("T")


def next_run_number(session: Session, model_id: int) -> int:
    """The number the next run of model ``model_id`` gets."""
    last = session.scalar(
        select(func.max(TradingRun.run_number)).where(TradingRun.model_id == model_id)
    )
    return (last or 0) + 1


def write_numbered(
    store: Store, write: Callable[[Session], T], model: str, model_id: int | None = None
) -> T:
    """``write(session)`` in a transaction of its own that numbers a new run of ``model``
    with :func:`next_run_number`, written again when another process took that number
    first (at most :data:`ATTEMPTS` times). A model (``model_id``) deleted meanwhile is
    not found."""
    lost: IntegrityError | None = None
    for _attempt in range(ATTEMPTS):
        try:
            with store.session() as session:
                return write(session)
        except IntegrityError as exc:
            lost = exc
            if model_id is not None:
                with store.session() as session:
                    if session.get(TradingModel, model_id) is None:
                        raise NotFoundError(f"no model {model!r}: it was deleted") from None
    raise RunStateError(f"could not allocate a run number for model {model}") from lost
