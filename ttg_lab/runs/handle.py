"""A handle on a run: control it while this process executes it, read it at any time."""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd

from ttg_lab.engine.events import EventBus, Subscriber
from ttg_lab.engine.loop import RunExecutor
from ttg_lab.engine.reader import equity_frame, ledger_frame, reasoning_frame
from ttg_lab.errors import NotFoundError
from ttg_lab.store.database import Store
from ttg_lab.store.leases import RunLostError, live_holder
from ttg_lab.store.schema import (
    RunStatus,
    TradingModel,
    TradingRun,
)


class RunHandle:
    """A run of a model: control it while it runs, read it at any time."""

    def __init__(self, store: Store, run_id: int, bus: EventBus | None = None) -> None:
        self.store = store
        self.id = run_id
        self.bus = bus or EventBus()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._outcome: RunStatus | None = None
        self._failure: RunLostError | None = None

    def __repr__(self) -> str:
        row = self.info()
        return f"<Run {self.id}: {row['model']} #{row['run_number']} {row['status']}>"

    def info(self) -> dict[str, Any]:
        """The run's row (with its model's name) as a dict."""
        with self.store.session() as session:
            run = session.get(TradingRun, self.id)
            if run is None:
                raise NotFoundError(f"no run {self.id}")
            model = session.get(TradingModel, run.model_id)
            assert model is not None
            return {
                "id": run.id,
                "model": model.signature,
                "run_number": run.run_number,
                "status": run.status,
                "error": run.error,
                "mode": run.mode,
                "start": run.period_start,
                "end": run.period_end,
                "steps_done": run.steps_done,
                "steps_total": run.steps_total,
                "total_trades": run.total_trades,
                "final_value": run.final_value,
                "final_return": run.final_return,
                "max_drawdown": run.max_drawdown,
                "llm_calls": run.llm_calls,
                "llm_cost": run.llm_cost,
                "wasted_llm_calls": run.wasted_llm_calls,
                "wasted_llm_cost": run.wasted_llm_cost,
                "total_llm_cost": run.llm_cost + run.wasted_llm_cost,
                "worker": run.worker,
                "heartbeat_at": run.heartbeat_at,
                "live": live_holder(self.store.url, run) is not None,
                "snapshot": run.strategy_snapshot,
            }

    @property
    def status(self) -> str:
        return str(self.info()["status"])

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def subscribe(self, callback: Subscriber, replay: bool = True) -> Any:
        """Receive this run's events; returns an unsubscribe function."""
        return self.bus.subscribe(callback, replay=replay)

    def stop(self) -> None:
        """Ask the run to stop; it ends ``stopped`` before its next step."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run's thread ends (or ``timeout``); returns the status. When this
        process executed the run, that is the status it ended with (``failed`` also when
        the end could not be recorded), and an execution another process took over
        raises its :class:`~ttg_lab.store.leases.RunLostError`."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return self.status
        if self._failure is not None:
            raise self._failure
        return self._outcome or self.status

    def start_thread(self, executor: RunExecutor) -> None:
        self._thread = threading.Thread(
            target=self._execute, args=(executor,), name=f"ttg-run-{self.id}", daemon=True
        )
        self._thread.start()

    def run_here(self, executor: RunExecutor) -> None:
        """Execute in the calling thread; raises what a background run keeps for wait()."""
        self._execute(executor)
        self.wait()

    def _execute(self, executor: RunExecutor) -> None:
        try:
            self._outcome = executor.execute()
        except RunLostError as lost:  # kept for wait(): a background thread has nobody to tell
            self._failure = lost

    def ledger(self) -> pd.DataFrame:
        """Every action of the run in order (:data:`~ttg_lab.engine.ledger.LEDGER_COLUMNS`)."""
        return ledger_frame(self.store, self.id)

    def equity(self) -> pd.DataFrame:
        """The portfolio marked to market at each step's close."""
        return equity_frame(self.store, self.id)

    def reasoning(self) -> pd.DataFrame:
        """The agent's reasoning entries in order."""
        return reasoning_frame(self.store, self.id)
