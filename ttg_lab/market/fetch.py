"""Fetching bars from a data provider into the store: plan, send, cache, parse, check, merge.

:func:`fetch_bars` works symbol by symbol. It plans the symbol's requests
(:meth:`~ttg_lab.market.providers.base.DataProvider.requests`); for each, a fresh answer
in the raw-answer cache (:mod:`ttg_lab.market.responses`) is used as it is, otherwise the
request waits for the provider's rate limits on the clock (each wait reported, with its
reason), is sent, its answer kept in the cache and parsed. A rate-limit answer is waited
out (``retry_after``) and asked again a few times; a used-up quota stops the fetch (the
symbols left are reported "not fetched"), any other failure fails that symbol only.
Once all of a symbol's answers are in, its bars inside the period that are **complete**
(their end, by the market's calendar, is not after the clock's now) pass Step 1's checks
and are merged as one load (:func:`~ttg_lab.market.loader.load_bars`: one transaction,
differing stored bars refused unless ``replace``). Bars that started but have not ended
are never stored: their opens are reported (:attr:`FetchReport.pending`). A failing symbol
merges nothing.

**Freshness.** A cached answer is reused when no bar it could hold can have started or
completed since it was fetched: no bar of the request's days starts or ends after
``fetched_at`` and at or before now. So an answer covering finished days is never asked for
twice (a rerun after a kill resumes where it stopped), ``data update`` an hour into a
session asks again, and a forward run polling after a session's open gets that day's open
(pending), not an answer from before it. An answer's ``fetched_at`` is the fetch's clock
when it came (a test's clock in tests), not the provider's.

**Provenance.** Each symbol's merge is recorded as load ``fetch:<provider>:<market>:
<interval>:<symbol>`` whose source names the provider and the SHA-256 of every answer used;
the cache's load log lists them with the merged bars' fingerprint.
:func:`update_datasets` finds from those loads which datasets came from a provider and
brings each up to its last complete bar.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from ttg_lab.clock import WALL_CLOCK, Clock
from ttg_lab.dates import parse_date
from ttg_lab.errors import DataFileError, FetchError, ValidationError
from ttg_lab.market.bars import BAR_COLUMNS, INTERVALS, INTRADAY_MINUTES, ImportedBars
from ttg_lab.market.importers import sort_bars
from ttg_lab.market.loader import BarConflictError, MergeResult, fingerprint, load_bars
from ttg_lab.market.markets import Market, get_market
from ttg_lab.market.providers.base import (
    DataProvider,
    FetchRequest,
    Parsed,
    Pending,
    RawResponse,
)
from ttg_lab.market.responses import LoadRecord, ResponseCache
from ttg_lab.ratelimit import QuotaExceeded, RateLimiter, Wait
from ttg_lab.store.database import Store
from ttg_lab.store.schema import Dataset, StockPrice

REQUEST_TIMEOUT = 30.0
"""Seconds a request may take."""
RATE_LIMIT_RETRIES = 3
"""Times a request refused for its rate is asked again before its symbol fails."""
RATE_LIMIT_WAIT = 60.0
"""Seconds to wait after a rate-limit answer that says nothing of when to come back."""
LOAD_PREFIX = "fetch:"
UPDATE_OVERLAP_DAYS = 3
"""Days before the last stored bar that ``update`` asks for again, to catch revised bars."""
DEFAULT_DAYS = 30
"""Days before its end a fetch without a start begins."""
QUOTA_LEFT = "not fetched: quota; run again after the reset to resume"


@dataclass(frozen=True)
class FetchProgress:
    """What a fetch is doing: ``done`` of ``total`` symbols finished, a message, and the
    seconds it is about to wait (None when it is not waiting)."""

    symbol: str
    done: int
    total: int
    message: str
    waiting: float | None = None


Failure = FetchError | BarConflictError
"""Why a symbol was not merged: the provider's answer, or bars differing from the stored."""


@dataclass(frozen=True)
class SymbolResult:
    """One symbol's fetch: the merge (None when it failed) or the error, the requests sent
    and the answers reused from the cache, and the SHA-256 of every answer used."""

    symbol: str
    merge: MergeResult | None
    error: Failure | None
    sent: int = 0
    reused: int = 0
    responses: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """What the provider said of its answers (e.g. a free key's shorter history)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        asked = f"{self.sent} sent, {self.reused} from the cache"
        if self.error is not None:
            return f"{self.symbol}: failed ({asked}): {self.error}"
        assert self.merge is not None
        m = self.merge
        parts = [f"{m.added:,} added", f"{m.skipped:,} identical skipped"]
        parts += [f"{m.replaced:,} replaced"] if m.replaced else []
        noted = "".join(f"; {note}" for note in self.notes)
        return f"{self.symbol}: {', '.join(parts)} ({asked}){noted}"


@dataclass(frozen=True)
class FetchReport:
    """What a fetch did, symbol by symbol (see the module)."""

    provider: str
    market: str
    interval: str
    first: date
    last: date
    results: tuple[SymbolResult, ...]
    pending: tuple[Pending, ...] = ()
    """Opens of bars that had started but not ended: never stored."""
    waited: float = 0.0
    """Seconds spent waiting on rate limits."""
    stopped: tuple[str, ...] = ()
    """Symbols not fetched because the fetch was stopped."""

    @property
    def ok(self) -> bool:
        """Whether every symbol was fetched and merged."""
        return not self.stopped and all(r.ok for r in self.results)

    @property
    def failed(self) -> tuple[SymbolResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def sent(self) -> int:
        return sum(r.sent for r in self.results)

    @property
    def reused(self) -> int:
        return sum(r.reused for r in self.results)

    def summary(self) -> str:
        """One line for people."""
        merged = [r.merge for r in self.results if r.merge is not None]
        added = sum(m.added for m in merged)
        skipped = sum(m.skipped for m in merged)
        line = (
            f"{self.provider} {self.market} {self.interval} {self.first}..{self.last}: "
            f"{len(merged)} of {len(self.results) + len(self.stopped)} symbol(s) merged, "
            f"{added:,} bars added, {skipped:,} identical skipped; {self.sent} request(s) "
            f"sent, {self.reused} answer(s) from the cache"
        )
        if self.waited:
            line += f"; waited {self.waited:.0f} s for rate limits"
        if self.failed:
            line += f"; {len(self.failed)} failed"
        if self.stopped:
            line += f"; stopped, {len(self.stopped)} not fetched"
        return line


# --------------------------------------------------------------------------- calendar


def local_now(clock: Clock, market: Market) -> datetime:
    """The clock's now in the market's time (naive, exchange-local)."""
    return clock.now().astimezone(ZoneInfo(market.timezone)).replace(tzinfo=None)


def _local(moment: datetime, market: Market) -> datetime:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(market.timezone)).replace(tzinfo=None)


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _may_change(market: Market, interval: str, day: date, after: datetime, until: datetime) -> bool:
    """Whether a bar of ``day`` may start or end after ``after`` and at or before ``until``:
    a daily bar starts at the first open and ends at the last close; an intraday bar at any
    minute of a session (sources align their bars differently), so any session time in
    between counts."""
    if not market.trades_on(day):
        return False
    if interval not in INTRADAY_MINUTES:
        return any(
            after < moment <= until for moment in (market.first_open(day), market.last_close(day))
        )
    midnight = datetime.combine(day, time())
    return any(
        max(after, midnight + timedelta(minutes=s.open))
        < min(until, midnight + timedelta(minutes=s.close))
        for s in market.segments
    )


def is_fresh(response: RawResponse, market: Market, now: datetime) -> bool:
    """Whether no bar ``response`` could hold can have ended since it was fetched (``now``
    exchange-local; see the module)."""
    fetched = _local(response.fetched_at, market)
    request = response.request
    first = max(request.first, fetched.date() - timedelta(days=1))
    last = min(request.last, now.date())
    return not any(
        _may_change(market, request.interval, day, fetched, now) for day in _days(first, last)
    )


def _bar_end(market: Market, interval: str, start: datetime) -> datetime | None:
    if interval not in INTRADAY_MINUTES:
        return market.last_close(start.date())
    return market.bar_end(start, INTRADAY_MINUTES[interval])


def split_complete(
    frame: pd.DataFrame, market: Market, interval: str, now: datetime
) -> tuple[pd.DataFrame, tuple[Pending, ...]]:
    """The complete bars of ``frame`` (their end not after ``now``, exchange-local), and
    the opens of those that started but have not ended. A bar outside the sessions counts
    as complete, so the market's checks refuse it by name."""
    stamps = pd.DatetimeIndex(frame["ts"])
    ends = {t: _bar_end(market, interval, t.to_pydatetime()) for t in stamps.unique()}
    complete = np.array([(e := ends[t]) is None or e <= now for t in stamps], dtype=bool)
    started = np.asarray(stamps <= pd.Timestamp(now), dtype=bool)
    done = frame[complete]
    opens = frame[started & ~complete]
    pending = tuple(
        Pending(str(s), pd.Timestamp(t).to_pydatetime(), float(o))
        for s, t, o in zip(opens["symbol"], opens["ts"], opens["open"], strict=True)
    )
    return done.reset_index(drop=True), pending


# --------------------------------------------------------------------------- the fetch


class _QuotaStop(Exception):
    """The provider's quota is used up: the fetch stops."""

    def __init__(self, error: FetchError) -> None:
        self.error = error


class _Stopped(Exception):
    """The stop event was set."""


@dataclass
class _Fetch:
    """One fetch's working state (see :func:`fetch_bars`)."""

    store: Store
    provider: DataProvider
    market: Market
    interval: str
    first: date
    last: date
    cache: ResponseCache
    clock: Clock
    limiter: RateLimiter
    on_progress: Callable[[FetchProgress], None] | None
    replace: bool
    stop: threading.Event | None
    total: int
    done: int = 0
    waited: float = 0.0
    sends: int = 0
    """Requests sent so far (refused ones included)."""
    pending: list[Pending] = field(default_factory=list)

    def say(self, symbol: str, message: str, waiting: float | None = None) -> None:
        if self.on_progress is not None:
            self.on_progress(FetchProgress(symbol, self.done, self.total, message, waiting))

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def sleep(self, symbol: str, seconds: float, reason: str) -> None:
        self.say(symbol, reason, seconds)
        if self.clock.sleep(seconds, self.stop):
            raise _Stopped
        self.waited += seconds

    def slot(self, symbol: str) -> None:
        """Wait for the rate limits (saying so); a used-up quota stops the fetch."""

        def on_wait(wait: Wait) -> None:
            self.say(symbol, wait.reason(self.provider.name), wait.seconds)

        try:
            waited = self.limiter.acquire(self.stop, on_wait)
        except QuotaExceeded as exc:
            raise _QuotaStop(FetchError(self.provider.name, symbol, str(exc), "quota")) from None
        if waited is None:
            raise _Stopped
        self.waited += waited

    def answer(self, request: FetchRequest) -> tuple[RawResponse, Parsed, bool]:
        """The answer to ``request`` and its bars; True when it came from the cache."""
        cached = self.cache.get(request)
        if cached is not None and is_fresh(cached, self.market, local_now(self.clock, self.market)):
            try:
                return cached, self.provider.parse(cached, self.market), True
            except FetchError:
                self.cache.discard(request)  # kept by an older release, unusable: ask again
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            if self.stopped():
                raise _Stopped
            self.slot(request.symbol)
            try:
                self.sends += 1
                sent = self.provider.send(request, REQUEST_TIMEOUT)
                response = dataclasses.replace(
                    sent, fetched_at=self.clock.now()
                )  # the fetch's time
                self.cache.put(response)
                try:
                    return response, self.provider.parse(response, self.market), False
                except FetchError:
                    self.cache.discard(request)
                    raise
            except FetchError as exc:
                if exc.kind == "quota":
                    raise _QuotaStop(exc) from None
                if exc.kind != "rate_limit" or attempt == RATE_LIMIT_RETRIES:
                    raise
                wait = exc.retry_after if exc.retry_after is not None else RATE_LIMIT_WAIT
                reason = f"waiting {wait:.0f} s: {self.provider.name} answered {exc.reason}"
                self.sleep(request.symbol, wait, reason)
        raise AssertionError("unreachable")  # pragma: no cover

    def symbol(self, symbol: str, requests: list[FetchRequest]) -> SymbolResult:
        """Fetch and merge one symbol through its planned ``requests`` (see :func:`fetch_bars`)."""
        frames: list[pd.DataFrame] = []
        shas: list[str] = []
        notes: list[str] = []
        before, reused = self.sends, 0

        def result(merge: MergeResult | None, error: Failure | None) -> SymbolResult:
            said = tuple(dict.fromkeys(notes))
            return SymbolResult(
                symbol, merge, error, self.sends - before, reused, tuple(shas), said
            )

        for number, request in enumerate(requests, 1):
            if self.stopped():
                raise _Stopped
            self.say(symbol, f"{symbol}: request {number} of {len(requests)}")
            try:
                response, parsed, from_cache = self.answer(request)
            except FetchError as exc:
                return result(None, exc)
            reused += from_cache
            shas.append(response.sha256)
            frames.append(parsed.bars.frame)
            notes.extend(parsed.notes)
        try:
            return result(self.merge(symbol, frames, shas), None)
        except (FetchError, BarConflictError) as exc:
            return result(None, exc)

    def merge(self, symbol: str, frames: list[pd.DataFrame], shas: list[str]) -> MergeResult:
        """The symbol's complete bars of the period, checked and merged as one load."""
        name = load_name(self.provider.name, self.market.code, self.interval, symbol)
        source = (
            f"fetched from {self.provider.name} ({self.market.code} {self.interval} {symbol} "
            f"{self.first}..{self.last}), answers sha256 {' '.join(shas) or 'none'}"
        )
        bars = _combined(frames, symbol)
        days = pd.DatetimeIndex(bars["ts"]).normalize()
        inside = (days >= pd.Timestamp(self.first)) & (days <= pd.Timestamp(self.last))
        now = local_now(self.clock, self.market)
        complete, pending = split_complete(bars[inside], self.market, self.interval, now)
        imported = ImportedBars(complete, self.interval, source)
        try:
            if complete.empty:
                merge = MergeResult(name, self.market.code, self.interval, source)
            else:  # load_bars validates and checks them against the market as of now
                merge = load_bars(self.store, name, self.market.code, imported, self.replace, now)
        except DataFileError as exc:
            raise FetchError(self.provider.name, symbol, exc.reason, "bad_response") from None
        except BarConflictError:
            raise
        except ValidationError as exc:
            raise FetchError(self.provider.name, symbol, str(exc), "bad_response") from None
        self.pending.extend(pending)
        self.cache.log_load(
            LoadRecord(
                name,
                self.market.code,
                self.interval,
                symbol,
                tuple(shas),
                fingerprint(complete),
                merge.added,
                merge.skipped,
                merge.replaced,
                self.clock.now().astimezone(UTC).isoformat(),
            )
        )
        return merge


def _combined(frames: list[pd.DataFrame], symbol: str) -> pd.DataFrame:
    """One frame of the answers' bars of ``symbol``; where answers overlap, the later one's."""
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS}).astype(
            {"symbol": object, "ts": "datetime64[ns]"}
        )
    frame = pd.concat(frames, ignore_index=True)
    frame = frame[frame["symbol"] == symbol]
    frame = frame.drop_duplicates(["symbol", "ts"], keep="last")
    return sort_bars(frame[BAR_COLUMNS]).reset_index(drop=True)


def load_name(provider: str, market: str, interval: str, symbol: str) -> str:
    """The load a fetched symbol's bars are recorded as."""
    return f"{LOAD_PREFIX}{provider}:{market}:{interval}:{symbol}"


def fetch_period(
    market: str, start: object = None, end: object = None, clock: Clock = WALL_CLOCK
) -> tuple[date, date]:
    """The days a fetch asks for: ``start``..``end`` read by the one date parser in the
    market's time zone; ``end`` defaults to today there, ``start`` to
    :data:`DEFAULT_DAYS` before the end."""
    spec = get_market(market)
    last = (
        local_now(clock, spec).date()
        if end is None
        else parse_date(end, "end of the fetch", spec.timezone).date()
    )
    if start is None:
        return last - timedelta(days=DEFAULT_DAYS), last
    return parse_date(start, "start of the fetch", spec.timezone).date(), last


def _check_request(
    provider: DataProvider,
    market: Market,
    symbols: Sequence[str],
    interval: str,
    first: date,
    last: date,
) -> list[str]:
    """The symbols to fetch (in order, once each), or a clear error naming the bad value."""
    if market.code not in provider.markets:
        served = ", ".join(provider.markets)
        raise ValidationError(
            f"{provider.name} does not serve market {market.code!r}; it serves {served}"
        )
    if interval not in INTERVALS or interval not in provider.intervals:
        served = ", ".join(i for i in provider.intervals if i in INTERVALS)
        raise ValidationError(
            f"interval {interval!r}: {provider.name} serves {served} bars the lab understands"
        )
    if not isinstance(first, date) or not isinstance(last, date):
        raise ValidationError(f"start {first!r} and end {last!r} must be dates")
    if first > last:
        raise ValidationError(f"the start {first} is after the end {last}")
    if isinstance(symbols, str):
        raise ValidationError(f"symbols must be a list of symbols, not the text {symbols!r}")
    chosen = list(dict.fromkeys(str(s).strip() for s in symbols))
    if not chosen:
        raise ValidationError("no symbols to fetch")
    bad = [s for s in chosen if not market.is_symbol(s)]
    if bad:
        raise ValidationError(
            f"{', '.join(map(repr, bad))}: not {market.code} symbols "
            f"(spelled like {market.symbol_example})"
        )
    return chosen


def plan_fetch(
    provider: DataProvider,
    market: Market,
    symbols: Sequence[str],
    interval: str,
    first: date,
    last: date,
) -> dict[str, list[FetchRequest]]:
    """Every symbol's requests (in order, once each), planned before one is sent: a bad
    argument or a symbol the provider cannot ask for is refused with nothing asked (a
    batch's ``data:`` section is checked this way before anything runs)."""
    chosen = _check_request(provider, market, symbols, interval, first, last)
    return {s: provider.requests(market, s, interval, first, last) for s in chosen}


def fetch_bars(
    store: Store,
    provider: DataProvider,
    market: str,
    symbols: Sequence[str],
    interval: str,
    first: date,
    last: date,
    *,
    cache_dir: Path,
    clock: Clock = WALL_CLOCK,
    on_progress: Callable[[FetchProgress], None] | None = None,
    replace: bool = False,
    stop: threading.Event | None = None,
) -> FetchReport:
    """Fetch ``symbols``' ``interval`` bars of days ``first``..``last`` from ``provider``
    and merge their complete bars into ``market`` (see the module). Bad arguments are
    refused before anything is asked."""
    spec = get_market(market)
    plans = plan_fetch(provider, spec, symbols, interval, first, last)
    chosen = list(plans)
    cache = ResponseCache(cache_dir)
    limiter = RateLimiter(provider.name, provider.limits, clock, cache.state_file(provider.name))
    work = _Fetch(
        store, provider, spec, interval, first, last, cache, clock, limiter, on_progress,
        replace, stop, len(chosen),
    )  # fmt: skip
    results: list[SymbolResult] = []
    left: tuple[str, ...] = ()
    for index, symbol in enumerate(chosen):
        try:
            result = work.symbol(symbol, plans[symbol])
        except _QuotaStop as quota:
            results.append(SymbolResult(symbol, None, quota.error))
            results += [
                SymbolResult(s, None, FetchError(provider.name, s, QUOTA_LEFT, "quota"))
                for s in chosen[index + 1 :]
            ]
            work.say(symbol, str(quota.error))
            break
        except _Stopped:
            left = tuple(chosen[index:])
            work.say(symbol, f"stopped: {len(left)} symbol(s) not fetched")
            break
        results.append(result)
        work.done += 1
        work.say(symbol, result.summary())
    return FetchReport(
        provider.name,
        spec.code,
        interval,
        first,
        last,
        tuple(results),
        tuple(work.pending),
        work.waited,
        left,
    )


def paced_sender(
    provider: DataProvider,
    cache_dir: Path,
    *,
    clock: Clock = WALL_CLOCK,
    on_wait: Callable[[Wait], None] | None = None,
    stop: threading.Event | None = None,
) -> Callable[[FetchRequest], RawResponse]:
    """Sends ``provider``'s requests as :func:`fetch_bars` does: within its rate limits
    (counted with the bar fetches' in the cache folder, so they share one quota), each
    answer stamped with the clock and kept in the cache. For fetches that are not bars
    (news); a used-up quota is a FetchError ``quota``, a stop a FetchError ``network``."""
    cache = ResponseCache(cache_dir)
    limiter = RateLimiter(provider.name, provider.limits, clock, cache.state_file(provider.name))

    def send(request: FetchRequest) -> RawResponse:
        try:
            waited = limiter.acquire(stop, on_wait)
        except QuotaExceeded as exc:
            raise FetchError(provider.name, request.symbol, str(exc), "quota") from None
        if waited is None:
            raise FetchError(provider.name, request.symbol, "stopped before sending", "network")
        response = dataclasses.replace(
            provider.send(request, REQUEST_TIMEOUT), fetched_at=clock.now()
        )
        cache.put(response)
        return response

    return send


# --------------------------------------------------------------------------- update


@dataclass(frozen=True)
class FetchedDataset:
    """Bars of one market and interval that came from a provider: which symbols."""

    provider: str
    market: str
    interval: str
    symbols: tuple[str, ...]


def fetched_datasets(store: Store) -> list[FetchedDataset]:
    """The datasets whose bars came from a provider, found from the recorded fetch loads."""
    with store.session() as session:
        rows = session.execute(
            select(Dataset.name, Dataset.market, Dataset.interval).where(
                Dataset.name.startswith(LOAD_PREFIX)
            )
        ).all()
    found: dict[tuple[str, str, str], set[str]] = {}
    for name, market, interval in rows:
        parts = str(name)[len(LOAD_PREFIX) :].split(":")
        if len(parts) < 4:
            continue
        provider, symbol = ":".join(parts[:-3]), parts[-1]
        found.setdefault((provider, str(market), str(interval)), set()).add(symbol)
    return [FetchedDataset(p, m, i, tuple(sorted(s))) for (p, m, i), s in sorted(found.items())]


def _last_bars(store: Store, dataset: FetchedDataset) -> dict[str, datetime]:
    with store.session() as session:
        rows = session.execute(
            select(StockPrice.symbol, func.max(StockPrice.ts))
            .where(
                StockPrice.market == dataset.market,
                StockPrice.interval == dataset.interval,
                StockPrice.symbol.in_(list(dataset.symbols)),
            )
            .group_by(StockPrice.symbol)
        ).all()
    return {str(s): ts for s, ts in rows if ts is not None}


def update_datasets(
    store: Store,
    make: Callable[[str], DataProvider],
    *,
    cache_dir: Path,
    provider: str | None = None,
    clock: Clock = WALL_CLOCK,
    on_progress: Callable[[FetchProgress], None] | None = None,
    stop: threading.Event | None = None,
) -> list[FetchReport]:
    """Bring every fetched dataset (of ``provider``, or all) up to its last complete bar:
    each asks its provider (``make(name)``) for its symbols from
    :data:`UPDATE_OVERLAP_DAYS` before the earliest of their last stored bars to today.
    A stored bar that the provider now answers differently is refused as in any fetch."""
    datasets = [d for d in fetched_datasets(store) if provider in (None, d.provider)]
    if provider is not None and not datasets:
        raise ValidationError(f"no dataset in the store was fetched from {provider!r}")
    reports = []
    for dataset in datasets:
        if stop is not None and stop.is_set():
            break
        spec = get_market(dataset.market)
        today = local_now(clock, spec).date()
        last = _last_bars(store, dataset)
        since = min(last.values()).date() if len(last) == len(dataset.symbols) else None
        first = (since or today - timedelta(days=365)) - timedelta(days=UPDATE_OVERLAP_DAYS)
        reports.append(
            fetch_bars(
                store,
                make(dataset.provider),
                dataset.market,
                dataset.symbols,
                dataset.interval,
                min(first, today),
                today,
                cache_dir=cache_dir,
                clock=clock,
                on_progress=on_progress,
                stop=stop,
            )
        )
    return reports


__all__ = [
    "FetchProgress",
    "FetchReport",
    "FetchedDataset",
    "SymbolResult",
    "fetch_bars",
    "fetch_period",
    "fetched_datasets",
    "is_fresh",
    "load_name",
    "split_complete",
    "update_datasets",
]
