"""Forward runs: a run whose calendar follows the wall clock, bar by bar as they come.

A forward run's first step is the first bar that starts at or after the run was created
(a bar already started would be a backtest step). :class:`ForwardFeed` gives the loop
each next step (:class:`~ttg_lab.engine.loop.StepFeed`): it polls its
:class:`BarSource` (the provider, through the fetch pipeline: complete bars merged into
the store, the opens of started bars returned as :class:`Pending`), and a step at ``t``
happens once ``t``'s open is known for the run's tickers (or a later bar shows that the
missing ones have none at ``t``). Between bars it sleeps on its
:class:`~ttg_lab.clock.Clock` until the next bar the market's calendar expects (a daily
run until the next session's open), polling again every few minutes while a bar is late;
a weekday without a bar (a holiday) is passed over once a later bar shows.

What a step sees is built for it: its tickers' bars before ``t`` and, of the bar at
``t``, its open only (open = high = low = close, volume 0), whether that bar had ended
or not, so nothing after the open can leak, and the step's equity is marked at that
open. The hash of those bars is the step's ``data_seen``: resume recomputes it for the
last committed step and refuses when the bars a decision used have changed.

Bars that started before an execution began (the run was down) are caught up, each as of
its own time: decided exactly like a backtest step at that clock, or (``missed="skip"``)
recorded without a decision.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Protocol

import pandas as pd
from sqlalchemy import select

from ttg_lab.clock import Clock
from ttg_lab.engine.loop import FeedStep
from ttg_lab.engine.snapshot import ForwardSpec, RunSnapshot
from ttg_lab.errors import FetchError, RunStateError, ValidationError
from ttg_lab.market.asof import PriceIndex
from ttg_lab.market.bars import BAR_COLUMNS, INTRADAY_MINUTES
from ttg_lab.market.fetch import fetch_bars, fetched_datasets
from ttg_lab.market.loader import bar_hash_sum, read_price_frame
from ttg_lab.market.markets import Market
from ttg_lab.market.providers import make_provider
from ttg_lab.market.providers.base import DataProvider, Pending
from ttg_lab.store.database import Store
from ttg_lab.store.schema import RunStep

POLL_EVERY = 300.0
"""Seconds between polls while an expected bar is late."""

LATE_GRACE = timedelta(hours=2)
"""How long after its end a bar that has not come is still waited for (some providers
publish a day's bar after the close)."""

_LOOKAHEAD_DAYS = 14
"""How far the calendar looks for a market's next bar (covers any weekend or break)."""


class BarSource(Protocol):
    """Where a forward run's bars come from: a poll merges the complete bars of
    ``symbols`` over ``first``..``last`` into the store and returns the opens of the bars
    that have started but not ended."""

    def poll(
        self, symbols: Sequence[str], first: date, last: date, stop: threading.Event
    ) -> Sequence[Pending]: ...


def bar_start(market: Market, interval: str, label: datetime) -> datetime:
    """When the bar ``label`` starts, aware UTC (a daily bar: its session's open)."""
    local = market.decision_time(label, interval)
    return market.to_utc(local).replace(tzinfo=UTC)


Slots = tuple[int, ...]
"""When a day's intraday bars start, in minutes after midnight (exchange-local)."""

_SLOT_SAMPLE = 200
"""How many of the latest bar times show a provider's intraday slots."""


def bar_slots(labels: Sequence[datetime], market: Market) -> Slots | None:
    """The slots the latest of ``labels`` (intraday bar starts) start at, inside the
    market's sessions: sources align their bars differently (10:00, 11:00 ... or 09:30,
    10:30 ...). None when there are none."""
    minutes = {t.hour * 60 + t.minute for t in list(labels)[-_SLOT_SAMPLE:]}
    inside = sorted(m for m in minutes if any(s.holds_start(m) for s in market.segments))
    return tuple(inside) or None


def bar_labels(
    market: Market, interval: str, day: date, slots: Slots | None = None
) -> list[datetime]:
    """The bars the calendar expects on ``day`` (holidays are not known): an intraday
    bar at each of ``slots``, or every interval from each session's open without them."""
    if not market.trades_on(day):
        return []
    midnight = datetime.combine(day, time())
    if interval not in INTRADAY_MINUTES:
        return [midnight]
    step = INTRADAY_MINUTES[interval]
    minutes = slots or [
        minute for segment in market.segments for minute in range(segment.open, segment.close, step)
    ]
    return [midnight + timedelta(minutes=minute) for minute in minutes]


def expected_bars(
    market: Market,
    interval: str,
    not_before: datetime,
    until: date | None,
    after: datetime | None,
    slots: Slots | None = None,
) -> list[datetime]:
    """The bars the calendar expects (at ``slots``, for intraday bars) that start at or
    after ``not_before`` (aware UTC), are labelled after ``after`` and fall on or before
    ``until`` (with no ``until``: the next one only)."""
    local = not_before.astimezone(UTC).replace(tzinfo=None)
    day = (local - timedelta(days=1)).date()  # the exchange's day may lag UTC's
    if after is not None:
        day = max(day, after.date())
    last = until if until is not None else day + timedelta(days=_LOOKAHEAD_DAYS)
    found: list[datetime] = []
    while day <= last:
        for label in bar_labels(market, interval, day, slots):
            if (after is None or label > after) and bar_start(market, interval, label) >= (
                not_before
            ):
                found.append(label)
                if until is None:
                    return found
        day += timedelta(days=1)
    return found


def seen_bars(frame: pd.DataFrame, clock: datetime) -> pd.DataFrame:
    """What a step at ``clock`` may see of ``frame``: the bars before it and, of the bars
    at it, the open only (open = high = low = close, volume 0)."""
    ts = frame["ts"]
    before = frame[ts < clock]
    current = frame[ts == clock].copy()
    for column in ("high", "low", "close"):
        current[column] = current["open"]
    current["volume"] = 0.0
    return pd.concat([before, current], ignore_index=True)[BAR_COLUMNS]


def data_seen(frame: pd.DataFrame) -> str:
    """The hash of bars a step saw (stored as ``run_steps.data_seen``)."""
    return f"{bar_hash_sum(frame):064x}"


class ForwardFeed:
    """The steps of one execution of a forward run (see the module)."""

    def __init__(
        self,
        store: Store,
        snapshot: RunSnapshot,
        source: BarSource,
        clock: Clock,
        *,
        poll_every: float = POLL_EVERY,
    ) -> None:
        if snapshot.forward is None:
            raise ValidationError("a forward feed needs a forward run's snapshot")
        self.store = store
        self.spec: ForwardSpec = snapshot.forward
        self.market = snapshot.market
        self.interval = snapshot.interval
        self.tickers = list(snapshot.tickers)
        self.source = source
        self.clock = clock
        self.poll_every = poll_every
        self._late: dict[datetime, int] = {}
        """Polls so far for each expected bar that is late."""
        self.began = clock.now()
        """When this execution began: bars that started before it were missed."""
        self._frame = self._stored()
        times = sorted(set(pd.DatetimeIndex(self._frame["ts"]).to_pydatetime()))
        self.slots = bar_slots(times, self.market)

    @property
    def not_before(self) -> datetime:
        """The run's first bar starts at or after this (aware UTC)."""
        return self.spec.started_at.replace(tzinfo=UTC)

    def expected(self) -> list[datetime]:
        """The bars expected through ``until`` by the calendar (the next one when
        open-ended): the run's expected steps."""
        return expected_bars(
            self.market, self.interval, self.not_before, self.spec.until, None, self.slots
        )

    def next_step(self, after: datetime | None, stop: threading.Event) -> FeedStep | None:
        """The step after ``after`` once its bar's open is known, polling and sleeping
        until then; None when ``until`` is passed or ``stop`` is set."""
        while not stop.is_set():
            self._poll(after, stop)
            if stop.is_set():
                return None
            label = self._next_known(after)
            if label is not None and self._past_until(label):
                return None
            if label is not None and self._ready(label):
                return self._step(label)
            wake = self._next_wake(after)
            if wake is None:  # the calendar expects no more bars through until
                return None
            if self.clock.sleep(max(0.0, (wake - self.clock.now()).total_seconds()), stop):
                return None
        return None

    def check_seen(self, run_id: int) -> None:
        """Refuse (no step written) when the bars the run's last committed step saw have
        changed since it was decided (polled first: the bar it decided at may have been
        pending then and not stored yet)."""
        with self.store.session() as session:
            last = session.scalars(
                select(RunStep)
                .where(RunStep.run_id == run_id)
                .order_by(RunStep.step_index.desc())
                .limit(1)
            ).first()
        if last is None or last.data_seen is None:
            return
        self._poll(last.ts, threading.Event())
        now = data_seen(seen_bars(self._frame, last.ts))
        if now != last.data_seen:
            raise RunStateError(
                f"run {run_id}: the bars its step {last.step_index} ({last.ts:%Y-%m-%d %H:%M}) "
                "decided on have changed in the store since (data_seen differs); "
                "start a new run instead"
            )

    def empty_index(self) -> PriceIndex:
        """An index with no bars: what a forward run sees before its first step."""
        return PriceIndex(self._frame.iloc[0:0], self.market.code, self.interval)

    def _stored(self, pending: Sequence[Pending] = ()) -> pd.DataFrame:
        """The tickers' stored bars plus the pending opens of bars not stored yet."""
        frame = read_price_frame(self.store, self.market.code, self.interval, self.tickers)
        have = set(zip(frame["symbol"], frame["ts"], strict=True))
        opens = [
            (p.symbol, pd.Timestamp(p.ts), p.open, p.open, p.open, p.open, 0.0)
            for p in pending
            if p.symbol in self.tickers and (p.symbol, pd.Timestamp(p.ts)) not in have
        ]
        if not opens:
            return frame
        extra = pd.DataFrame(opens, columns=BAR_COLUMNS).astype(frame.dtypes.to_dict())
        return pd.concat([frame, extra], ignore_index=True).sort_values(
            ["symbol", "ts"], kind="stable", ignore_index=True
        )

    def _poll(self, after: datetime | None, stop: threading.Event) -> None:
        today = self.clock.now().astimezone(UTC).date() + timedelta(days=1)
        first = (after or self.not_before.replace(tzinfo=None)).date()
        pending = self.source.poll(self.tickers, first, max(first, today), stop)
        self._frame = self._stored(pending)

    def _candidates(self, after: datetime | None) -> pd.Series:
        """Bar labels known after ``after`` (and not before the run's first bar)."""
        ts = self._frame["ts"]
        floor = self.not_before.replace(tzinfo=None) - timedelta(days=1)  # any time zone
        ts = ts[ts >= (floor if after is None else max(floor, after))]
        known = pd.Series(sorted(set(ts[ts > after] if after is not None else ts)))
        starts = [bar_start(self.market, self.interval, t.to_pydatetime()) for t in known]
        return known[[s >= self.not_before for s in starts]] if len(known) else known

    def _next_known(self, after: datetime | None) -> datetime | None:
        known = self._candidates(after)
        return None if known.empty else known.iloc[0].to_pydatetime()

    def _past_until(self, label: datetime) -> bool:
        return self.spec.until is not None and label.date() > self.spec.until

    def _ready(self, label: datetime) -> bool:
        """Whether the step at ``label`` can be taken: it has started, and every ticker's
        open is known, or a later bar shows the missing ones have none at it, or the bar
        has ended."""
        if self.clock.now() < bar_start(self.market, self.interval, label):
            return False  # a bar shown before its session opens is not traded early
        frame = self._frame
        at = set(frame.loc[frame["ts"] == label, "symbol"])
        if at >= set(self.tickers) or (frame["ts"] > label).any():
            return True
        return self.clock.now() >= self._end(label)

    def _next_wake(self, after: datetime | None) -> datetime | None:
        """When to poll next: the next expected bar's start; while it is late, after a
        wait that doubles from ``poll_every``, until it is given up (``LATE_GRACE`` after
        its end: a holiday, or a symbol that did not trade) and the one after it is
        awaited; None when no bar is expected through ``until``."""
        now = self.clock.now()
        label = after
        while True:
            nearest = expected_bars(
                self.market, self.interval, self.not_before, None, label, self.slots
            )
            if not nearest or self._past_until(nearest[0]):
                return None
            expected = nearest[0]
            start = bar_start(self.market, self.interval, expected)
            if start > now:
                return start
            given_up = self._end(expected) + LATE_GRACE
            if now < given_up:
                late = self._late.get(expected, 0)
                self._late[expected] = late + 1
                return min(now + timedelta(seconds=self.poll_every * 2**late), given_up)
            label = expected

    def _end(self, label: datetime) -> datetime:
        """When the bar ``label`` ends, aware UTC (a daily bar: at the last close)."""
        minutes = INTRADAY_MINUTES.get(self.interval)
        local = None if minutes is None else self.market.bar_end(label, minutes)
        if local is None:  # daily, or a start outside the sessions: the day's close
            local = self.market.last_close(label.date())
        return self.market.to_utc(local).replace(tzinfo=UTC)

    def _step(self, label: datetime) -> FeedStep:
        seen = seen_bars(self._frame, label)
        index = PriceIndex(seen, self.market.code, self.interval)
        skipped = self.spec.missed == "skip" and (
            bar_start(self.market, self.interval, label) < self.began
        )
        return FeedStep(label, index, data_seen(seen), skipped)


PASSING_FAILURES = frozenset({"rate_limit", "quota", "network", "bad_response"})
"""Fetch failures a forward run outlasts (it polls again later); any other (a refused key,
an unknown symbol, a premium-only request, a stored bar the provider now answers
differently) ends it, failed with the reason."""


class ProviderSource:
    """A :class:`BarSource` over a data provider, through the fetch pipeline: every poll
    fetches, validates and merges the complete bars (rate limits waited on the run's
    clock, raw answers kept in ``cache_dir``) and returns the opens of started bars."""

    def __init__(
        self,
        store: Store,
        provider: DataProvider,
        market: str,
        interval: str,
        cache_dir: Path,
        clock: Clock,
    ) -> None:
        self.store = store
        self.provider = provider
        self.market = market
        self.interval = interval
        self.cache_dir = cache_dir
        self.clock = clock

    def poll(
        self, symbols: Sequence[str], first: date, last: date, stop: threading.Event
    ) -> Sequence[Pending]:
        report = fetch_bars(
            self.store,
            self.provider,
            self.market,
            symbols,
            self.interval,
            first,
            last,
            cache_dir=self.cache_dir,
            clock=self.clock,
            stop=stop,
        )
        for result in report.results:  # a passing failure: those bars come at a later poll
            error = result.error
            if error is not None and not (
                isinstance(error, FetchError) and error.kind in PASSING_FAILURES
            ):
                raise error
        return report.pending


def provider_source(
    store: Store, snapshot: RunSnapshot, clock: Clock, cache_dir: Path
) -> ProviderSource:
    """The source of a forward run's bars: its recorded provider (and base URL)."""
    spec = snapshot.forward
    if spec is None:
        raise ValidationError("only a forward run polls a provider")
    provider = make_provider(spec.provider, spec.provider_url)
    return ProviderSource(
        store,
        provider,
        snapshot.model.market,
        snapshot.interval,
        cache_dir,
        clock,
    )


def default_provider(store: Store, market: str, interval: str) -> str:
    """The provider the store's ``market``/``interval`` bars were fetched from, when one
    was; otherwise an error asking for ``provider=``."""
    found = sorted(
        {
            d.provider
            for d in fetched_datasets(store)
            if (d.market, d.interval) == (market, interval)
        }
    )
    if len(found) == 1:
        return found[0]
    which = f"they came from {', '.join(found)}" if found else "none were fetched from one"
    raise ValidationError(
        f"a forward run needs provider=... (the data provider it polls, e.g. alphavantage "
        f"or ccxt:binance): of the {market} {interval} bars in the store, {which}"
    )
