"""Per-provider request limits shared by every run of the process.

Runs execute each in a thread with an event loop of its own, so one endpoint's limits
live in a :class:`ProviderLimiter` guarded by a thread lock, found by (provider name,
base URL) in one process-wide table. A request takes a slot before it is sent and gives it
back when its answer (or error) came: at most ``concurrency`` requests are in flight, at
most ``requests_per_minute`` start in any window of ``window`` seconds, and none starts
while the endpoint is cooling down after a 429. Waiters are served first come, first
served; each waits on its own loop (or thread), never beyond the step's deadline
(:func:`step_deadline`), and one that would is refused with :class:`LimitWaitError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from ttg_lab.errors import TTGLabError
from ttg_lab.ratelimit import window_wait

RPM_WINDOW = 60.0
"""Seconds over which ``requests_per_minute`` is counted."""

_DEADLINE: ContextVar[float | None] = ContextVar("ttg_step_deadline", default=None)


class LimitWaitError(TTGLabError):
    """A request could not get a slot at its provider before the step's time limit."""


@contextlib.contextmanager
def step_deadline(seconds: float) -> Iterator[None]:
    """Within the block (and the tasks it starts), requests wait at most until
    ``seconds`` from now: the time a decision step has left."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def time_left(default: float) -> float:
    """Seconds until the current step's deadline (``default`` outside a step)."""
    deadline = _DEADLINE.get()
    return default if deadline is None else deadline - time.monotonic()


@dataclass(frozen=True)
class Limits:
    """What one endpoint accepts: requests at once, and per minute (None: no limit)."""

    concurrency: int
    requests_per_minute: int | None


@dataclass(eq=False)
class _Waiter:
    wake: Callable[[], None]


class ProviderLimiter:
    """Slots of one endpoint: a concurrency limit, a requests-per-window limit and a
    cool-down after a 429, safe across threads and event loops."""

    def __init__(self, name: str, limits: Limits, window: float = RPM_WINDOW) -> None:
        self.name = name
        self.limits = limits
        self.window = window
        self._lock = threading.Lock()
        self._active = 0
        self._starts: deque[float] = deque()
        self._cool_until = 0.0
        self._queue: deque[_Waiter] = deque()
        self.max_in_flight = 0
        """The most requests seen in flight at once (for benchmarks and tests)."""

    def describe(self) -> str:
        rpm = self.limits.requests_per_minute
        per = f", {rpm} per {self.window:g} s" if rpm is not None else ""
        return f"{self.name} (at most {self.limits.concurrency} at once{per})"

    def cool_down(self, seconds: float) -> None:
        """No request starts for ``seconds`` (the provider said 429: slow everyone)."""
        with self._lock:
            self._cool_until = max(self._cool_until, time.monotonic() + seconds)

    # -- the slot -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def slot(self, timeout: float) -> AsyncIterator[None]:
        """Hold a slot for one request, waiting at most ``timeout`` seconds on this loop."""
        await self._acquire(timeout)
        try:
            yield
        finally:
            self._release()

    @contextlib.contextmanager
    def slot_blocking(self, timeout: float) -> Iterator[None]:
        """The same for a synchronous caller (its thread waits)."""
        event = threading.Event()
        waiter = _Waiter(event.set)
        deadline = time.monotonic() + timeout
        self._wait(waiter, deadline, lambda wait: event.wait(wait), event.clear)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody to wake
                loop.call_soon_threadsafe(woken.set)

        waiter = _Waiter(wake)
        deadline = time.monotonic() + timeout
        while True:
            wait = self._try(waiter, deadline)
            if wait is None:
                return
            woken.clear()  # a wake sent since _try runs after this clear: nothing is lost
            try:
                await asyncio.wait_for(woken.wait(), wait)
            except TimeoutError:
                pass  # time to look again (the cool-down or the window may be over)
            except BaseException:  # cancelled (the step's time limit): give up the place
                self._leave(waiter)
                raise

    def _wait(
        self,
        waiter: _Waiter,
        deadline: float,
        sleep: Callable[[float], object],
        clear: Callable[[], None],
    ) -> None:
        try:
            while True:
                wait = self._try(waiter, deadline)
                if wait is None:
                    return
                sleep(wait)
                clear()
        except BaseException:
            self._leave(waiter)
            raise

    def _try(self, waiter: _Waiter, deadline: float) -> float | None:
        """Take a slot for ``waiter`` (None) or say how long to wait before trying again
        (joining the queue); past ``deadline``, leave the queue and refuse."""
        with self._lock:
            now = time.monotonic()
            if waiter not in self._queue:
                self._queue.append(waiter)
            wait = self._free_in(now) if self._queue[0] is waiter else float("inf")
            if wait == 0.0:
                self._queue.popleft()
                self._active += 1
                self._starts.append(now)
                self.max_in_flight = max(self.max_in_flight, self._active)
                self._wake_first()  # the next in line may fit too
                return None
            left = deadline - now
            if left <= 0:
                self._remove(waiter)
                raise LimitWaitError(
                    f"no free slot at {self.describe()} before the step's time limit "
                    f"({self._active} requests in flight, {len(self._queue)} waiting)"
                )
            return min(wait, left)

    def _free_in(self, now: float) -> float:
        """Seconds until a request may start (0: now; inf: when one in flight ends)."""
        while self._starts and self._starts[0] <= now - self.window:
            self._starts.popleft()
        wait = max(0.0, self._cool_until - now)
        rpm = self.limits.requests_per_minute
        if rpm is not None:
            wait = max(wait, window_wait(self._starts, now, rpm, self.window))
        if self._active >= self.limits.concurrency:
            return float("inf")
        return wait

    def _release(self) -> None:
        with self._lock:
            self._active -= 1
            self._wake_first()

    def _leave(self, waiter: _Waiter) -> None:
        with self._lock:
            self._remove(waiter)

    def _remove(self, waiter: _Waiter) -> None:
        if waiter in self._queue:
            first = self._queue[0] is waiter
            self._queue.remove(waiter)
            if first:
                self._wake_first()

    def _wake_first(self) -> None:
        if self._queue:
            self._queue[0].wake()


_LIMITERS: dict[tuple[str, str], ProviderLimiter] = {}
_TABLE_LOCK = threading.Lock()


def limiter_for(provider: str, base_url: str, limits: Limits) -> ProviderLimiter:
    """The process's limiter of endpoint (``provider``, ``base_url``); a model asking for
    other limits than the endpoint has sets them (the latest model's limits apply)."""
    key = (provider, base_url.rstrip("/"))
    with _TABLE_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            limiter = _LIMITERS[key] = ProviderLimiter(f"{provider} {key[1]}", limits, RPM_WINDOW)
        elif limiter.limits != limits:
            with limiter._lock:
                limiter.limits = limits
                limiter._wake_first()
        return limiter
