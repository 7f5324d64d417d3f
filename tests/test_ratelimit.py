"""The request windows of data providers: waits on the clock, said before they happen,
refused beyond a bound, and shared by every process through the state file."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ttg_lab.ratelimit import QuotaExceeded, RateLimit, RateLimiter, Wait, window_wait

FREE_TIER = (RateLimit(5, 60), RateLimit(25, 86_400))


class FakeClock:
    """A clock whose sleep moves its time on at once."""

    def __init__(self, start: datetime) -> None:
        self.time = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.time

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        self.slept.append(seconds)
        self.time += timedelta(seconds=max(0.0, seconds))
        return bool(stop is not None and stop.is_set())


def clock() -> FakeClock:
    return FakeClock(datetime(2025, 11, 3, 15, tzinfo=UTC))


def test_window_wait_counts_only_starts_inside_the_window() -> None:
    assert window_wait([], 100.0, 2, 60) == 0.0
    assert window_wait([50.0], 100.0, 2, 60) == 0.0
    assert window_wait([50.0, 70.0], 100.0, 2, 60) == pytest.approx(10.0)
    assert window_wait([30.0, 50.0, 70.0], 100.0, 2, 60) == pytest.approx(10.0)
    assert window_wait([10.0, 20.0], 100.0, 2, 60) == 0.0


def test_sixth_request_a_minute_waits_on_the_clock_and_says_why() -> None:
    fake = clock()
    waits: list[Wait] = []
    limiter = RateLimiter("alphavantage", FREE_TIER, fake)
    started = time.monotonic()
    waited = [limiter.acquire(on_wait=waits.append) for _ in range(6)]
    assert time.monotonic() - started < 1.0  # no real sleep
    assert waited[:5] == [0.0] * 5
    assert waited[5] == pytest.approx(60.0)
    assert fake.slept == [pytest.approx(60.0)]
    assert [w.reason("alphavantage") for w in waits] == [
        "waiting 60 s: alphavantage allows 5 requests a minute"
    ]


def test_used_up_day_quota_is_refused_not_slept() -> None:
    fake = clock()
    limiter = RateLimiter("alphavantage", FREE_TIER, fake)
    for _ in range(25):
        limiter.acquire()
    before = fake.time
    with pytest.raises(QuotaExceeded, match=r"25 requests a day.*run again after the reset"):
        limiter.acquire()
    assert fake.time - before < timedelta(hours=1)
    assert all(s <= 60.0 for s in fake.slept)


def test_a_stop_during_a_wait_takes_no_slot(tmp_path: Path) -> None:
    state = tmp_path / "ratelimit.json"
    limiter = RateLimiter("p", (RateLimit(1, 60),), clock(), state)
    limiter.acquire()
    stop = threading.Event()
    stop.set()
    assert limiter.acquire(stop) is None
    assert len(json.loads(state.read_text())["starts"]) == 1


def test_the_quota_is_shared_through_the_state_file(tmp_path: Path) -> None:
    fake = clock()
    state = tmp_path / "alphavantage" / "ratelimit.json"
    first = RateLimiter("alphavantage", FREE_TIER, fake, state)
    for _ in range(20):
        fake.time += timedelta(minutes=1)
        first.acquire()
    second = RateLimiter("alphavantage", FREE_TIER, fake, state)  # a rerun, another process
    for _ in range(5):
        fake.time += timedelta(minutes=1)
        second.acquire()
    with pytest.raises(QuotaExceeded):
        first.acquire()
    fake.time += timedelta(days=1)
    assert second.acquire() == 0.0


def test_a_damaged_state_file_counts_nothing_rather_than_failing(tmp_path: Path) -> None:
    state = tmp_path / "ratelimit.json"
    state.write_text("{not json")
    assert RateLimiter("p", FREE_TIER, clock(), state).acquire() == 0.0
