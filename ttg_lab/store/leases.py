"""Run leases: which process may execute a run, kept alive by heartbeats, fenced by attempts.

A run row names the process executing it (``worker``, ``host:pid``), when that process
last gave a sign of life (``heartbeat_at``) and the claim it runs under (``attempt``,
one more per claim). A process executes a run only under a :class:`Lease` won by ONE
conditional UPDATE (:func:`claim`, or the insert of a new run), so of many processes
racing for a run exactly one wins. Every later write of the holder is conditioned on its
lease (:meth:`Lease.held`), so a process that lost it (taken over after its heartbeat
went stale, or its run deleted) can write nothing more: it stops with
:class:`RunLostError`.

A holder is live while its heartbeat is younger than ``TTG_LAB_RUN_STALE_AFTER`` seconds
(default 60; a :class:`LeaseKeeper` beats every sixth of that, also during a long LLM
step) and, when it ran on this host, its process exists. Hosts sharing a PostgreSQL
store compare heartbeats on their own clocks, so keep them in sync (NTP).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, false, or_, true, update
from sqlalchemy.orm import Session

from ttg_lab.errors import ConfigError, NotFoundError, RunStateError
from ttg_lab.store.database import Store, env_number
from ttg_lab.store.schema import TradingRun, utcnow

log = logging.getLogger(__name__)

STALE_AFTER_ENV = "TTG_LAB_RUN_STALE_AFTER"
BEATS_PER_STALE = 6

_held: set[tuple[str, int]] = set()
"""(store URL, run id) of the leases this process holds."""
_held_lock = threading.Lock()


class RunLostError(RunStateError):
    """This process no longer holds the run it was executing (another process took it
    over, or it was deleted): it stops without writing anything more."""


def stale_after() -> float:
    """Seconds without a heartbeat after which a run's worker is taken for dead."""
    seconds = env_number(STALE_AFTER_ENV, 60.0)
    if seconds <= 0:
        raise ConfigError(f"{STALE_AFTER_ENV} must be above 0, got {seconds:g}")
    return seconds


def this_host() -> str:
    return socket.gethostname()


def worker_id() -> str:
    """host:pid of this process, stored on the runs it executes."""
    return f"{this_host()}:{os.getpid()}"


@dataclass(frozen=True)
class Lease:
    """The right of one process (``worker``) to execute run ``run_id`` under ``attempt``."""

    store_url: str
    run_id: int
    worker: str
    attempt: int

    def held(self) -> ColumnElement[bool]:
        """SQL condition: the run row is still this lease's."""
        return (
            (TradingRun.id == self.run_id)
            & (TradingRun.worker == self.worker)
            & (TradingRun.attempt == self.attempt)
        )

    def lost(self, session: Session) -> RunLostError | None:
        """Why the lease no longer holds (read in ``session``); None while it does."""
        run = session.get(TradingRun, self.run_id, populate_existing=True)
        if run is None:
            return RunLostError(f"run {self.run_id} no longer exists (it or its model was deleted)")
        if run.worker == self.worker and run.attempt == self.attempt:
            return None
        return RunLostError(
            f"run {self.run_id} was taken over by {run.worker or 'another process'} "
            f"(attempt {run.attempt}; this process ran attempt {self.attempt})"
        )


def updated(session: Session, statement: Any) -> int:
    """Rows changed by an UPDATE (ORM state left alone: callers re-read what they need)."""
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(cast(CursorResult[Any], result).rowcount)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back UTC timestamps without their zone."""
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def _process_gone(worker: str, store_url: str, run_id: int) -> bool:
    """Whether ``worker`` ran on this host and its process is gone (or is this process,
    which does not hold the run): it can never beat again."""
    host, _, pid = worker.rpartition(":")
    if host != this_host() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        with _held_lock:
            return (store_url, run_id) not in _held
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def live_holder(store_url: str, run: TradingRun) -> str | None:
    """Who still executes ``run`` ("process host:pid, heartbeat 2 s ago"), or None when no
    process does: not running, no worker, a stale heartbeat, or a process of this host
    that is gone."""
    beat = _aware(run.heartbeat_at)
    if run.status != "running" or not run.worker or beat is None:
        return None
    age = (utcnow() - beat).total_seconds()
    if age > stale_after() or _process_gone(run.worker, store_url, run.id):
        return None
    return f"process {run.worker} (heartbeat {max(age, 0.0):.1f} s ago)"


def check_claimable(store_url: str, run: TradingRun) -> None:
    """Raise RunStateError when ``run`` may not be claimed: it is completed, or a live
    process still executes it."""
    if run.status == "completed":
        raise RunStateError(f"run {run.id} is completed; nothing to resume")
    holder = live_holder(store_url, run)
    if holder is not None:
        raise RunStateError(f"run {run.id} is still running in {holder}")


def claim(store: Store, run_id: int) -> Lease:
    """Take run ``run_id`` for this process, in one conditional UPDATE: it must not be
    completed, and if it is running its holder must be gone (the heartbeat still stale
    when the UPDATE runs). Of processes racing for a run exactly one wins; the others
    get a RunStateError saying who runs it."""

    def attempt() -> Lease:
        with store.session() as session:
            run = session.get(TradingRun, run_id)
            if run is None:
                raise NotFoundError(f"no run {run_id}")
            check_claimable(store.url, run)
            now, me = utcnow(), worker_id()
            # a holder gone from this host never beats again; one elsewhere might, until
            # the UPDATE runs: then its heartbeat must still be stale
            gone = not run.worker or _process_gone(run.worker, store.url, run_id)
            won = updated(
                session,
                update(TradingRun)
                .where(
                    TradingRun.id == run_id,
                    TradingRun.attempt == run.attempt,
                    TradingRun.status != "completed",
                    or_(
                        TradingRun.status != "running",
                        TradingRun.heartbeat_at.is_(None),
                        TradingRun.heartbeat_at < now - timedelta(seconds=stale_after()),
                        true() if gone else false(),
                    ),
                )
                .values(
                    status="running",
                    error=None,
                    ended_at=None,
                    worker=me,
                    attempt=run.attempt + 1,
                    heartbeat_at=now,
                ),
            )
            if won != 1:  # it changed since it was read: say how
                run = session.get(TradingRun, run_id, populate_existing=True)
                if run is None:
                    raise NotFoundError(f"no run {run_id}")
                check_claimable(store.url, run)
                holder = f"process {run.worker}" if run.worker else "another process"
                raise RunStateError(f"run {run_id} was just claimed by {holder}")
            return Lease(store.url, run_id, me, run.attempt + 1)

    return store.retrying(attempt, f"claiming run {run_id}")


class LeaseKeeper:
    """Holds a lease while a run executes: beats its heartbeat in a thread of its own (so
    a long LLM step is not taken for dead) and notices when it is lost."""

    def __init__(self, store: Store, lease: Lease) -> None:
        self.store = store
        self.lease = lease
        self.lost: RunLostError | None = None
        self._every = stale_after() / BEATS_PER_STALE
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"ttg-heartbeat-{lease.run_id}", daemon=True
        )

    def __enter__(self) -> LeaseKeeper:
        with _held_lock:
            _held.add((self.lease.store_url, self.lease.run_id))
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        with _held_lock:
            _held.discard((self.lease.store_url, self.lease.run_id))

    def _beat(self) -> None:
        while not self._stop.wait(self._every):
            try:
                with self.store.session() as session:
                    beat = update(TradingRun).where(self.lease.held()).values(heartbeat_at=utcnow())
                    if updated(session, beat) != 1:
                        self.lost = self.lease.lost(session)
                        return
            except Exception as exc:  # the database may come back; if not, the beat ages
                log.warning("heartbeat of run %s not written: %s", self.lease.run_id, exc)


__all__ = [
    "Lease",
    "LeaseKeeper",
    "RunLostError",
    "check_claimable",
    "claim",
    "live_holder",
    "stale_after",
    "worker_id",
]
