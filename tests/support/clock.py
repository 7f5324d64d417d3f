"""A clock for tests: it never sleeps, it jumps, and it lets the test act at each jump."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class FakeClock:
    """A :class:`~ttg_lab.clock.Clock` whose ``sleep`` advances its time at once and then
    calls ``on_sleep(now)`` (a test releases bars there, or kills the run by raising)."""

    def __init__(self, now: datetime, on_sleep: Callable[[datetime], None] | None = None) -> None:
        if now.tzinfo is None:
            raise ValueError("a FakeClock's time is aware (UTC)")
        self._now = now.astimezone(UTC)
        self.on_sleep = on_sleep
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if stop is not None and stop.is_set():
            return True
        self.slept.append(seconds)
        now = self.advance(max(0.0, seconds))
        if self.on_sleep is not None:
            self.on_sleep(now)
        return bool(stop is not None and stop.is_set())
