"""Request windows counted on a :class:`~ttg_lab.clock.Clock`: what a provider allows.

:func:`window_wait` is the one window rule (at most ``requests`` starts in any
``seconds``); the LLM limiter (:mod:`ttg_lab.llm.limits`) counts its per-minute window with
it too. :class:`RateLimiter` applies several windows at once (Alpha Vantage's free tier: 5
a minute and 25 a day) for the data pipeline: :meth:`RateLimiter.acquire` waits on the
clock, saying how long and why before each wait, and refuses a wait longer than
``max_wait`` (a used-up day's quota) with :class:`QuotaExceeded` instead of sleeping for
hours. The request starts it counted persist in a small JSON file, updated under a file
lock, so two processes or a rerun after a kill share one quota.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ttg_lab.clock import Clock
from ttg_lab.errors import TTGLabError

MAX_WAIT = 3600.0
"""The longest wait :meth:`RateLimiter.acquire` sleeps; longer means a quota is used up."""


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` requests in any ``seconds`` (a day's quota is 86,400 s)."""

    requests: int
    seconds: float

    def __str__(self) -> str:
        unit = {60.0: "a minute", 86_400.0: "a day", 1.0: "a second"}.get(float(self.seconds))
        per = unit or f"per {self.seconds:g} s"
        return f"{self.requests} requests {per}"


def window_wait(starts: Sequence[float], now: float, requests: int, seconds: float) -> float:
    """Seconds from ``now`` until one more request fits ``requests`` per ``seconds``, given
    the sorted start times of the requests made so far (0: at once)."""
    recent = len(starts) - bisect_right(starts, now - seconds)
    if recent < requests:
        return 0.0
    return max(0.0, starts[-requests] + seconds - now)


class QuotaExceeded(TTGLabError):
    """The next free slot is further away than a caller should wait (a used-up quota)."""

    def __init__(self, name: str, wait: float, limit: RateLimit) -> None:
        self.wait = wait
        self.limit = limit
        super().__init__(
            f"{name} allows {limit}: the next request may go in {wait / 3600:.1f} h; "
            "run again after the reset to resume"
        )


@dataclass(frozen=True)
class Wait:
    """A wait before a request: how long and which limit asks for it."""

    seconds: float
    limit: RateLimit

    def reason(self, name: str) -> str:
        return f"waiting {self.seconds:.0f} s: {name} allows {self.limit}"


class RateLimiter:
    """The windows of one provider, counted on ``clock`` (see the module). ``state`` is
    the JSON file the request starts persist in (None: this process only)."""

    def __init__(
        self,
        name: str,
        limits: Sequence[RateLimit],
        clock: Clock,
        state: Path | None = None,
        max_wait: float = MAX_WAIT,
    ) -> None:
        self.name = name
        self.limits = tuple(limits)
        self.clock = clock
        self.state = state
        self.max_wait = max_wait
        self._starts: list[float] = []
        self._lock = threading.Lock()
        self._horizon = max((limit.seconds for limit in self.limits), default=0.0)

    def next_wait(self, now: float, starts: Sequence[float]) -> Wait | None:
        """The longest wait any window asks before a request at ``now`` (None: none)."""
        waits = [Wait(window_wait(starts, now, w.requests, w.seconds), w) for w in self.limits]
        longest = max(waits, key=lambda w: w.seconds, default=None)
        return longest if longest is not None and longest.seconds > 0 else None

    def acquire(
        self,
        stop: threading.Event | None = None,
        on_wait: Callable[[Wait], None] | None = None,
    ) -> float | None:
        """Take a slot for one request, waiting on the clock as the windows ask; the
        seconds waited, or None when ``stop`` was set meanwhile. :class:`QuotaExceeded`
        when the wait would be longer than ``max_wait`` (nothing is counted then)."""
        waited = 0.0
        while True:
            with self._held() as starts:
                now = self.clock.now().timestamp()
                wait = self.next_wait(now, starts)
                if wait is None:
                    starts.append(now)
                    return waited
            if wait.seconds > self.max_wait:
                raise QuotaExceeded(self.name, wait.seconds, wait.limit)
            if on_wait is not None:
                on_wait(wait)
            if self.clock.sleep(wait.seconds, stop):
                return None
            waited += wait.seconds

    @contextmanager
    def _held(self) -> Iterator[list[float]]:
        """The request starts within the longest window, locked (across processes when
        persisted) and written back when the block ends."""
        with self._lock:
            if self.state is None:
                yield self._starts
                self._prune(self._starts)
                return
            self.state.parent.mkdir(parents=True, exist_ok=True)
            with open(self.state.with_suffix(".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    starts = self._read()
                    yield starts
                    self._prune(starts)
                    self._write(starts)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def _prune(self, starts: list[float]) -> None:
        if starts:
            cut = bisect_right(starts, starts[-1] - self._horizon)
            del starts[:cut]

    def _read(self) -> list[float]:
        assert self.state is not None
        try:
            data = json.loads(self.state.read_text())
        except (FileNotFoundError, ValueError):
            return []
        found = data.get("starts") if isinstance(data, dict) else None
        if not isinstance(found, list):
            return []
        return sorted(float(x) for x in found if isinstance(x, int | float))

    def _write(self, starts: list[float]) -> None:
        assert self.state is not None
        temp = self.state.with_suffix(".tmp")
        with open(temp, "w") as out:
            json.dump({"provider": self.name, "starts": starts}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.state)
