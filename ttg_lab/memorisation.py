"""A memorisation gap a user holds: the two arms (experiments of the same model, period,
mode and seeds, unmasked and masked) that :meth:`ttg_lab.lab.Lab.memorisation_gap`
started, followed and judged together (see :mod:`ttg_lab.metrics.gap`)."""

from __future__ import annotations

import time

from ttg_lab.metrics.gap import GapResult, stored_gap
from ttg_lab.run import Experiment
from ttg_lab.runs.experiments import GapInfo
from ttg_lab.store.database import Store
from ttg_lab.store.schema import RunStatus


class MemorisationGap:
    """The unmasked and the masked arm of one gap (``unmasked`` and ``masked``, each an
    :class:`~ttg_lab.run.Experiment`); ``wait()``, ``stop()``, ``resume()``, ``status``
    and ``result()``, the gap's statistics (a lower bound on memorisation)."""

    def __init__(self, store: Store, info: GapInfo, unmasked: Experiment, masked: Experiment):
        self.store = store
        self.info = info
        self.id = info.id
        self.unmasked = unmasked
        self.masked = masked

    def __repr__(self) -> str:
        arm = self.unmasked.info
        return f"<MemorisationGap {self.id}: {arm.model} x{arm.repeats} per arm {self.status}>"

    @property
    def arms(self) -> tuple[Experiment, Experiment]:
        return self.unmasked, self.masked

    @property
    def status(self) -> RunStatus:
        """``running`` while any run of either arm runs, else ``failed``, ``stopped`` or
        ``completed`` as :attr:`Experiment.status` says of the two together."""
        statuses = {arm.status for arm in self.arms}
        for status in ("running", "failed", "stopped"):
            if status in statuses:
                return status
        return "completed"

    def wait(self, timeout: float | None = None) -> RunStatus:
        """Block until every run of both arms this process executes ends (``timeout``:
        seconds for all of them); returns :attr:`status`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for arm in self.arms:
            arm.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self.status

    def stop(self) -> None:
        """Ask every run of both arms still running here to stop (resumable)."""
        for arm in self.arms:
            arm.stop()

    def resume(self, background: bool = True) -> MemorisationGap:
        """Continue every run of both arms that did not complete; returns this gap."""
        for arm in self.arms:
            arm.resume(background)
        return self

    def result(self) -> GapResult:
        """The gap over the runs that completed so far: unmasked - masked in total return
        and Sharpe, with its interval, p-value, effect size and verdict (a lower bound)."""
        return stored_gap(self.store, self.info)
