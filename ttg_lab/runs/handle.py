"""The execution of a run in this process: its thread, its events, its stop signal.

:class:`ttg_lab.run.Run` wraps it for the user (and reads what the run wrote).
"""

from __future__ import annotations

import threading
from typing import Any

from ttg_lab.engine.events import EventBus, Subscriber
from ttg_lab.engine.loop import RunExecutor
from ttg_lab.engine.reader import read_status
from ttg_lab.store.database import Store
from ttg_lab.store.leases import RunLostError
from ttg_lab.store.schema import RunStatus


class RunHandle:
    """Run ``run_id`` as this process knows it: executes it in a thread (or the calling
    one), publishes its events, asks it to stop and waits for it."""

    def __init__(self, store: Store, run_id: int, bus: EventBus | None = None) -> None:
        self.store = store
        self.id = run_id
        self.bus = bus or EventBus()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ended = threading.Event()  # waited on, not the thread: an interrupted
        # Thread.join() can leave the thread looking ended while it runs on
        self._outcome: RunStatus | None = None
        self._failure: RunLostError | None = None

    @property
    def status(self) -> RunStatus:
        return read_status(self.store, self.id)

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._ended.is_set()

    def subscribe(self, callback: Subscriber, replay: bool = True) -> Any:
        """Receive this run's events; returns an unsubscribe function."""
        return self.bus.subscribe(callback, replay=replay)

    def stop(self) -> None:
        """Ask the run to stop; it ends ``stopped`` before its next step."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> RunStatus:
        """Block until the run's thread ends (or ``timeout``); returns the status. When this
        process executed the run, that is the status it ended with (``failed`` also when
        the end could not be recorded), and an execution another process took over
        raises its :class:`~ttg_lab.store.leases.RunLostError`."""
        if self._thread is not None and not self._ended.wait(timeout):
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
        finally:
            self._ended.set()
