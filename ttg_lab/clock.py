"""The wall clock, behind a protocol so tests inject their own.

Whatever waits on real time (a data provider's rate limit, a forward run waiting for its
next bar) asks a :class:`Clock`: the wall clock in use, a test's clock that jumps instead
of sleeping. Times are aware UTC datetimes.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Tells the time and waits."""

    def now(self) -> datetime:
        """The current time, aware UTC."""
        ...

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Wait ``seconds`` (or until ``stop`` is set); True when stopped early."""
        ...


class WallClock:
    """The real clock: ``datetime.now(UTC)`` and a wait that ``stop`` interrupts."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if seconds <= 0:
            return bool(stop is not None and stop.is_set())
        if stop is None:
            threading.Event().wait(seconds)
            return False
        return stop.wait(seconds)


WALL_CLOCK = WallClock()
"""The clock everything uses unless a test injects another."""
