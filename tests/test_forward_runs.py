"""Forward runs: a run that trades bar by bar as the provider releases them, on a clock.

The clock is a :class:`support.clock.FakeClock` (its sleeps jump); the bars come from
the shipped US daily bars, released by time: a bar's open once it has started, the
whole bar once it has ended.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from sqlalchemy import select, update
from support.alphavantage_server import AlphaVantageServer
from support.clock import FakeClock
from test_cli import ttg

import ttg_lab
from ttg_lab.engine.context import RunContext
from ttg_lab.engine.ledger import REPRODUCED_COLUMNS
from ttg_lab.errors import RunStateError, ValidationError
from ttg_lab.lab import Lab
from ttg_lab.market.asof import AsOfView, PriceIndex
from ttg_lab.market.bars import ImportedBars
from ttg_lab.market.fetch import fetch_bars, is_fresh
from ttg_lab.market.loader import load_bars
from ttg_lab.market.markets import get_market
from ttg_lab.market.providers import make_provider
from ttg_lab.market.providers.base import FetchRequest, Pending, RawResponse
from ttg_lab.market.shipped import read_shipped
from ttg_lab.runs.forward import bar_start, expected_bars, seen_bars
from ttg_lab.store.database import Store
from ttg_lab.store.schema import LedgerEntry, RunStep, StockPrice, TradingRun

US = get_market("us")
TICKERS = ["AAPL", "MSFT", "NVDA"]
FIRST = datetime(2025, 10, 1)  # a Wednesday: the first bar the forward runs trade
UNTIL = date(2025, 10, 14)
BEFORE_OPEN = datetime(2025, 9, 30, 21, 0, tzinfo=UTC)  # after the close of Sep 30 (NY)


class Killed(BaseException):
    """The process dies: nothing of the run's end is recorded."""


class MemorySource:
    """Bars released by the clock: a poll merges the bars that have ended into the store
    and returns the opens of those that have started; it remembers what it showed."""

    def __init__(
        self, store: Store, bars: pd.DataFrame, clock: FakeClock, interval: str = "1d"
    ) -> None:
        self.store = store
        self.bars = bars
        self.clock = clock
        self.interval = interval
        self.shown: set[tuple[str, datetime]] = set()
        self.polls = 0

    def poll(
        self, symbols: Sequence[str], first: date, last: date, stop: threading.Event
    ) -> Sequence[Pending]:
        self.polls += 1
        now = self.clock.now()
        wanted = self.bars[self.bars["symbol"].isin(list(symbols))]
        ended, pending = [], []
        for row in wanted.itertuples(index=False):
            label = row.ts.to_pydatetime()
            end = US.last_close(label.date()) if self.interval == "1d" else US.bar_end(label, 60)
            assert end is not None
            if US.to_utc(end).replace(tzinfo=UTC) <= now:
                ended.append(row)
            elif bar_start(US, self.interval, label) <= now:
                pending.append(Pending(row.symbol, label, float(row.open)))
            else:
                continue
            self.shown.add((row.symbol, label))
        if ended:
            frame = pd.DataFrame(ended, columns=self.bars.columns)
            bars = ImportedBars(frame, self.interval, "memory")
            local = now.astimezone(ZoneInfo(US.timezone)).replace(tzinfo=None)
            load_bars(self.store, "memory", "us", bars, now=local)
        return pending


class Recorder(ttg_lab.Policy):
    """A deterministic policy that checks what it may see: buys 3 units of a ticker whose
    last close rose, sells what it holds of one whose last close fell. It records, per
    step, its clock and the latest bar it could read in full."""

    seen: ClassVar[list[tuple[datetime, datetime | None]]] = []
    stepped_at: ClassVar[list[datetime]] = []
    released: ClassVar[Callable[[str, datetime], bool] | None] = None
    """Whether a symbol's bar at a clock had been released (None: a backtest step)."""
    clock: ClassVar[FakeClock | None] = None

    def step(self, ctx: RunContext) -> ttg_lab.Decision:
        latest = [ctx.view.history(s)["ts"].max() for s in sorted(ctx.tickers)]
        full = max((t.to_pydatetime() for t in latest if pd.notna(t)), default=None)
        assert full is None or full < ctx.clock, (full, ctx.clock)
        released = Recorder.released
        if released is not None:  # a forward step: the clock's bar had been released
            assert all(released(s, ctx.clock) for s in ctx.tickers)
            for symbol in ctx.tickers:  # its prices hold nothing of that bar but its open
                bars = ctx.index.bars(symbol)
                assert bars.ts[-1] == ctx.clock
                assert bars.high[-1] == bars.low[-1] == bars.close[-1] == bars.open[-1]
                assert bars.volume[-1] == 0
        Recorder.seen.append((ctx.clock, full))
        if Recorder.clock is not None:
            Recorder.stepped_at.append(Recorder.clock.now())
        return super().step(ctx)

    def decide(self, market: ttg_lab.MarketView) -> list[ttg_lab.Order]:
        orders = []
        for symbol in market.symbols:
            closes = market.closes(symbol, 2)
            if len(closes) < 2 or market.open(symbol) is None:
                continue
            if closes[-1] > closes[-2] and market.max_units(symbol) >= 3:
                orders.append(ttg_lab.Order("buy", symbol, 3))
            elif closes[-1] < closes[-2] and market.quantity(symbol) > 0:
                orders.append(ttg_lab.Order("sell", symbol, market.quantity(symbol)))
        return orders


@pytest.fixture()
def shipped() -> pd.DataFrame:
    frame = read_shipped("us_daily")
    frame = frame[frame["symbol"].isin(TICKERS)]
    return frame[(frame["ts"] >= "2025-06-01") & (frame["ts"] <= "2025-10-31")]


@pytest.fixture()
def fresh(
    empty_db_url: str, shipped: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Lab]:
    """A lab whose store holds the tickers' bars before the forward period only (its
    data folder, where fetches keep their answers, the test's own)."""
    monkeypatch.setenv("TTG_LAB_DATA_DIR", str(tmp_path / "data"))
    lab = ttg_lab.open(empty_db_url, init=False)
    history = shipped[shipped["ts"] < FIRST].reset_index(drop=True)
    load_bars(lab.store, "history", "us", ImportedBars(history, "1d", "test"))
    Recorder.seen, Recorder.stepped_at, Recorder.released, Recorder.clock = [], [], None, None
    yield lab
    lab.close()


def _future(shipped: pd.DataFrame) -> pd.DataFrame:
    return shipped[shipped["ts"] >= FIRST].reset_index(drop=True)


def _model(lab: Lab) -> ttg_lab.ModelInfo:
    ttg_lab.register_policy("Recorder", Recorder)
    return lab.models.create("fwd", ai_model_id="policy/Recorder", tickers=TICKERS)


def _killer(lab: Lab, run_steps: int) -> Callable[[datetime], None]:
    """Kills the run at a sleep once ``run_steps`` steps are committed."""

    def on_sleep(now: datetime) -> None:
        with lab.store.session() as session:
            done = session.scalar(select(TradingRun.steps_done).where(TradingRun.forward))
        if done is not None and done >= run_steps:
            raise Killed

    return on_sleep


def _kill_after(clock: FakeClock, lab: Lab, run_steps: int) -> None:
    """Kill the run at its first sleep once ``run_steps`` steps are committed."""
    clock.on_sleep = _killer(lab, run_steps)


def _as_if_dead(lab: Lab, run_id: int) -> None:
    with lab.store.session() as session:
        session.execute(
            update(TradingRun)
            .where(TradingRun.id == run_id)
            .values(heartbeat_at=datetime(2000, 1, 1))
        )


def test_a_forward_run_steps_as_bars_come_survives_a_kill_and_books_what_a_backtest_books(
    fresh: Lab, shipped: pd.DataFrame
) -> None:
    lab = fresh
    clock = FakeClock(BEFORE_OPEN)
    source = MemorySource(lab.store, _future(shipped), clock)
    Recorder.released = lambda symbol, ts: (symbol, ts) in source.shown
    model = _model(lab)
    _kill_after(clock, lab, 4)
    with pytest.raises(Killed):
        lab.start_run(
            model,
            forward=True,
            until=UNTIL,
            provider="memory",
            path="direct",
            costs="zero",
            background=False,
            clock=clock,
            source=source,
        )
    run = lab.runs()[0]
    assert run.info.status == "running" and run.info.steps_done == 4  # died mid-run
    with lab.store.session() as session:
        row = session.get(TradingRun, run.id)
        assert row is not None and row.forward and row.steps_total == 10
    first = [clock_ for clock_, _ in Recorder.seen]
    assert first == [datetime(2025, 10, d) for d in (1, 2, 3, 6)]

    clock.on_sleep = None
    clock.advance(3 * 86400)  # down for three sessions (Oct 7, 8, 9 missed)
    _as_if_dead(lab, run.id)
    run.resume(background=False, clock=clock, source=source)
    assert run.status == "completed"
    clocks = [c for c, _ in Recorder.seen]
    trading_days = sorted(set(_future(shipped)["ts"]))
    expected = [t.to_pydatetime() for t in trading_days if t.date() <= UNTIL]
    assert clocks == expected  # every bar once, in order, the missed ones as of their time
    assert all(full is not None and full < c for c, full in Recorder.seen)
    with lab.store.session() as session:
        steps = session.scalars(
            select(RunStep).where(RunStep.run_id == run.id).order_by(RunStep.step_index)
        ).all()
        row = session.get(TradingRun, run.id)
        assert row is not None and row.steps_total == row.steps_done == len(expected)
    assert [s.ts for s in steps] == expected
    assert all(s.data_seen and not s.skipped for s in steps)

    clock.advance(86400)  # the last bar ends; an update stores it, as `data update` would
    source.poll(TICKERS, UNTIL, UNTIL, threading.Event())
    Recorder.released = None  # the backtest's bars are all in the store: nothing released
    backtest = lab.start_run(
        model, start=expected[0], end=expected[-1], path="direct", costs="zero", background=False
    )
    assert backtest.status == "completed"
    pd.testing.assert_frame_equal(
        run.ledger()[REPRODUCED_COLUMNS], backtest.ledger()[REPRODUCED_COLUMNS]
    )
    assert (run.ledger()["status"] == "filled").sum() > 2  # it traded


def test_a_forward_run_on_alpha_vantage_trades_each_bar_as_the_server_releases_it(
    fresh: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The must-show path: the real provider and fetch pipeline against the local Alpha
    Vantage, which releases bars one by one as the clock passes their day; the run is
    killed, resumed across missed sessions, and books what a backtest books."""
    lab = fresh
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "test-key-not-secret")
    with AlphaVantageServer() as server:
        released: list[datetime] = []

        def release(now: datetime) -> None:  # the server shows bars up to now's NY day
            local = now.astimezone(ZoneInfo(US.timezone)).replace(tzinfo=None)
            server.release_until(local)
            released.append(local)

        clock = FakeClock(BEFORE_OPEN)
        release(clock.now())
        Recorder.released = lambda symbol, ts: ts <= released[-1]
        Recorder.clock = clock
        model = _model(lab)
        kill = _killer(lab, 4)
        clock.on_sleep = lambda now: (release(now), kill(now))[0]
        arguments = {
            "forward": True,
            "until": UNTIL,
            "provider": "alphavantage",
            "provider_url": server.base_url,
            "path": "direct",
            "costs": "zero",
            "background": False,
            "clock": clock,
        }
        with pytest.raises(Killed):
            lab.start_run(model, **arguments)
        run = lab.runs()[0]
        assert run.info.steps_done == 4 and run.info.status == "running"
        live = list(zip([c for c, _ in Recorder.seen], Recorder.stepped_at, strict=True))
        for bar, at in live:  # each stepped at its open, before the next session opened
            start = bar_start(US, "1d", bar)
            assert start <= at < start + timedelta(hours=6, minutes=30)

        clock.on_sleep = release
        clock.advance(2 * 86400)  # killed before Oct 7's open, back at Oct 9's: 7 and 8 missed
        release(clock.now())
        _as_if_dead(lab, run.id)
        run.resume(background=False, clock=clock)
        assert run.status == "completed", run.info.error
        clocks = [c for c, _ in Recorder.seen]
        assert clocks == [datetime(2025, 10, d) for d in (1, 2, 3, 6, 7, 8, 9, 10, 13, 14)]
        assert all(full is not None and full < c for c, full in Recorder.seen)
        for bar, at in zip(clocks, Recorder.stepped_at, strict=True):
            start = bar_start(US, "1d", bar)
            if bar in (datetime(2025, 10, 7), datetime(2025, 10, 8)):
                assert at >= start + timedelta(days=1) - timedelta(hours=1)  # caught up late
            else:  # live: at its open, before that session closed
                assert start <= at < start + timedelta(hours=6, minutes=30)

        clock.advance(86400)  # the last bar ends: fetched, the store holds every bar
        release(clock.now())
        provider = make_provider("alphavantage", server.base_url)
        report = fetch_bars(
            lab.store,
            provider,
            "us",
            TICKERS,
            "1d",
            UNTIL,
            UNTIL,
            cache_dir=tmp_path / "cache",
            clock=clock,
        )
        assert report.ok, report.summary()
    Recorder.released, Recorder.clock = None, None
    backtest = lab.start_run(
        model, start=clocks[0], end=clocks[-1], path="direct", costs="zero", background=False
    )
    pd.testing.assert_frame_equal(
        run.ledger()[REPRODUCED_COLUMNS], backtest.ledger()[REPRODUCED_COLUMNS]
    )
    assert (run.ledger()["status"] == "filled").sum() > 2


def test_missed_bars_can_be_recorded_skipped_without_a_decision(
    fresh: Lab, shipped: pd.DataFrame
) -> None:
    lab = fresh
    clock = FakeClock(BEFORE_OPEN)
    source = MemorySource(lab.store, _future(shipped), clock)
    model = _model(lab)
    _kill_after(clock, lab, 3)
    with pytest.raises(Killed):
        lab.start_run(
            model,
            forward=True,
            until=UNTIL,
            provider="memory",
            missed="skip",
            path="direct",
            costs="zero",
            background=False,
            clock=clock,
            source=source,
        )
    run = lab.runs()[0]
    clock.on_sleep = None
    # killed waiting for Oct 6's open, back an hour into Oct 7's session: both missed
    clock.advance(86400 + 3600)
    _as_if_dead(lab, run.id)
    events: list[str] = []
    run.resume(
        background=False,
        clock=clock,
        source=source,
        on_event=lambda e: events.append(f"{e.kind}:{e.message}"),
    )
    assert run.status == "completed"
    with lab.store.session() as session:
        steps = session.scalars(
            select(RunStep).where(RunStep.run_id == run.id).order_by(RunStep.step_index)
        ).all()
        skipped_steps = [s.step_index for s in steps if s.skipped]
        ledger_steps = set(
            session.scalars(select(LedgerEntry.step_index).where(LedgerEntry.run_id == run.id))
        )
    skipped = [s for s in steps if s.skipped]
    assert [s.ts for s in skipped] == [datetime(2025, 10, 6), datetime(2025, 10, 7)]
    assert not ledger_steps & set(skipped_steps)  # no decision at a skipped step
    before = steps[skipped_steps[0] - 1]
    for s in skipped:  # the portfolio unchanged, marked at the bar's open
        assert s.cash == before.cash and s.holdings == before.holdings
        opens = shipped[(shipped["ts"] == s.ts)].set_index("symbol")["open"]
        value = s.cash + sum(q * opens[sym] for sym, q in s.holdings.items())
        assert s.equity == pytest.approx(value)
    assert sum("skipped: missed while the run was down" in e for e in events) == 2
    assert run.metrics()["total_return"] is not None  # metrics read it like any run
    assert [c for c, _ in Recorder.seen if c in {s.ts for s in skipped}] == []


def test_resume_refuses_when_the_bars_a_decision_saw_changed(
    fresh: Lab, shipped: pd.DataFrame
) -> None:
    lab = fresh
    clock = FakeClock(BEFORE_OPEN)
    source = MemorySource(lab.store, _future(shipped), clock)
    model = _model(lab)
    _kill_after(clock, lab, 2)
    with pytest.raises(Killed):
        lab.start_run(
            model,
            forward=True,
            until=UNTIL,
            provider="memory",
            path="direct",
            background=False,
            clock=clock,
            source=source,
        )
    run = lab.runs()[0]
    _as_if_dead(lab, run.id)
    with lab.store.session() as session:  # the provider revised a bar the run had decided on
        session.execute(
            update(StockPrice)
            .where(StockPrice.symbol == "AAPL", StockPrice.ts == datetime(2025, 9, 30))
            .values(close=StockPrice.close + 1.0)
        )
    with pytest.raises(RunStateError, match=r"step 1 \(2025-10-02 00:00\).*data_seen differs"):
        run.resume(background=False, clock=clock, source=source)
    with lab.store.session() as session:
        row = session.get(TradingRun, run.id)
        assert row is not None and row.status == "running" and row.steps_done == 2


def test_a_forward_run_starts_at_the_first_bar_after_its_creation(
    fresh: Lab, shipped: pd.DataFrame
) -> None:
    lab = fresh
    during = datetime(2025, 10, 1, 15, 0, tzinfo=UTC)  # Oct 1's session has started
    clock = FakeClock(during)
    source = MemorySource(lab.store, _future(shipped), clock)
    model = _model(lab)
    run = lab.start_run(
        model,
        forward=True,
        until=date(2025, 10, 3),
        provider="memory",
        path="direct",
        background=False,
        clock=clock,
        source=source,
    )
    assert run.status == "completed"
    assert [c for c, _ in Recorder.seen] == [datetime(2025, 10, 2), datetime(2025, 10, 3)]
    assert run.info.steps_total == 2


def test_a_forward_run_stopped_while_it_waits_ends_stopped(
    fresh: Lab, shipped: pd.DataFrame
) -> None:
    lab = fresh
    clock = FakeClock(BEFORE_OPEN)
    source = MemorySource(lab.store, _future(shipped), clock)
    model = _model(lab)
    holder: list[ttg_lab.Run] = []

    def stop_after_two(now: datetime) -> None:
        if len(Recorder.seen) >= 2 and holder:
            holder[0].stop()

    clock.on_sleep = stop_after_two
    run = lab.start_run(
        model, forward=True, provider="memory", path="direct", clock=clock, source=source
    )
    holder.append(run)
    assert run.wait(timeout=60) == "stopped"
    assert len(Recorder.seen) == 2
    assert run.info.steps_total == 2  # open-ended: the steps done so far


def test_asof_shows_only_the_open_of_the_current_bar() -> None:
    frame = read_shipped("us_daily")
    frame = frame[(frame["symbol"] == "AAPL") & (frame["ts"] >= "2025-09-01")]
    clock = datetime(2025, 10, 1)
    view = AsOfView(PriceIndex(frame, "us", "1d"), clock)
    actual = frame[frame["ts"] == clock].iloc[0]
    assert view.open("AAPL") == actual["open"]
    for field in ("high", "low", "close", "volume"):
        with pytest.raises(ttg_lab.errors.LookAheadError):
            view.value("AAPL", clock, field)
    assert view.history("AAPL")["ts"].max() < clock
    assert view.last_close("AAPL") == frame[frame["ts"] < clock]["close"].iloc[-1]
    seen = seen_bars(frame.reset_index(drop=True), clock)
    assert seen["ts"].max() == clock
    current = seen[seen["ts"] == clock].iloc[0]
    assert current["high"] == current["low"] == current["close"] == actual["open"]
    assert current["volume"] == 0


def test_the_calendar_expects_sessions_and_hourly_bars() -> None:
    monday = datetime(2025, 10, 6, 12, 0, tzinfo=UTC)
    assert expected_bars(US, "1d", monday, date(2025, 10, 13), None) == [
        datetime(2025, 10, d) for d in (6, 7, 8, 9, 10, 13)
    ]
    hourly = expected_bars(US, "60min", monday, date(2025, 10, 6), None)
    assert hourly[0] == datetime(2025, 10, 6, 9, 30) and hourly[-1] == datetime(2025, 10, 6, 15, 30)
    assert len(hourly) == 7
    late = datetime(2025, 10, 6, 14, 0, tzinfo=UTC)  # 10:00 in New York: 09:30 has started
    assert expected_bars(US, "60min", late, None, None) == [datetime(2025, 10, 6, 10, 30)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"forward": True, "provider": "memory", "fill": "close"}, "fills at the open"),
        ({"until": "2025-10-10"}, "until belong.*forward=True"),
        ({"forward": True, "provider": "memory", "until": "10/10/2025"}, "until must be a day"),
        ({"forward": True, "provider": "memory", "missed": "later"}, "missed must be one of"),
        ({"forward": True}, "needs provider="),
        (
            {"forward": True, "provider": "x", "provider_url": "http://h/q?apikey=S"},
            "without query",
        ),
        ({"forward": True, "provider": "memory", "start": "2025-10-01"}, "starts at the next bar"),
        ({"forward": True, "provider": "memory", "until": "2025-09-01"}, "before the first"),
    ],
)
def test_bad_forward_options_are_refused_naming_them_and_nothing_is_written(
    fresh: Lab, options: dict[str, object], message: str
) -> None:
    model = _model(fresh)
    with pytest.raises(ValidationError, match=message):
        fresh.start_run(
            model, path="direct", background=False, clock=FakeClock(BEFORE_OPEN), **options
        )
    assert fresh.runs().table().empty


def test_a_forward_run_takes_no_repeats(fresh: Lab) -> None:
    model = _model(fresh)
    with pytest.raises(ValidationError, match="no repeats"):
        fresh.start_run(model, forward=True, provider="memory", path="direct", repeats=2)
    assert fresh.runs().table().empty


def test_forward_runs_are_marked_on_the_leaderboard(fresh: Lab, shipped: pd.DataFrame) -> None:
    clock = FakeClock(BEFORE_OPEN)
    source = MemorySource(fresh.store, _future(shipped), clock)
    model = _model(fresh)
    fresh.start_run(
        model,
        forward=True,
        until=date(2025, 10, 3),
        provider="memory",
        path="direct",
        background=False,
        clock=clock,
        source=source,
    )
    fresh.start_run(model, start="2025-09-01", end="2025-09-30", path="direct", background=False)
    board = fresh.leaderboard()
    assert "forward" in board.columns
    assert sorted(board["forward"].tolist()) == [False, True]


def test_a_daily_answer_cached_before_the_open_is_not_fresh_after_it() -> None:
    """A poll after a session opens must ask again: the answer from before cannot hold
    that day's open (a forward run would wait for the close instead of trading at it)."""
    request = FetchRequest("alphavantage", "AAPL", "1d", "http://x/query", (), FIRST.date(), UNTIL)
    evening = datetime(2025, 9, 30, 21, 0, tzinfo=UTC)
    answer = RawResponse(request, 200, b"{}", "application/json", evening)
    assert is_fresh(answer, US, datetime(2025, 10, 1, 9, 0))  # New York, before the open
    assert not is_fresh(answer, US, datetime(2025, 10, 1, 9, 30))  # the open: ask again


def test_the_run_command_takes_forward_options_and_refuses_bad_ones_naming_them(
    db_url: str,
) -> None:
    lab = ttg_lab.open(db_url)
    lab.models.create("bh", ai_model_id="baseline/buy_and_hold", tickers=["AAPL"])
    try:
        direct = ["--path", "direct"]
        past = ttg(db_url, "run", "bh", "--forward", "--until", "2025-10-10", *direct, check=False)
        assert past.returncode == 1 and "needs provider=" in past.stdout  # none fetched
        past = ttg(
            db_url,
            "run",
            "bh",
            "--forward",
            "--until",
            "2025-10-10",
            "--provider",
            "alphavantage",
            *direct,
            check=False,
        )
        assert past.returncode == 1 and "until 2025-10-10 is before the first 1d bar" in past.stdout
        alone = ttg(db_url, "run", "bh", "--until", "2025-10-10", *direct, check=False)
        assert alone.returncode == 1 and "until belong(s) to forward runs" in alone.stdout
        close = ttg(
            db_url,
            "run",
            "bh",
            "--forward",
            "--provider",
            "alphavantage",
            "--fill",
            "close",
            *direct,
            check=False,
        )
        assert close.returncode == 1 and "fills at the open" in close.stdout
        assert lab.runs().table().empty
    finally:
        lab.close()


def test_a_forward_run_outlasts_a_provider_outage_and_fails_on_a_refused_key(
    fresh: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = fresh
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "test-key-not-secret")
    model = _model(lab)
    with AlphaVantageServer() as server:
        clock = FakeClock(BEFORE_OPEN)
        broke: list[datetime] = []

        def release(now: datetime) -> None:
            server.release_until(now.astimezone(ZoneInfo(US.timezone)).replace(tzinfo=None))
            if len(Recorder.seen) == 1 and not broke:  # down for the next open's polls
                server.fail("html_502", times=len(TICKERS) * 2)
                broke.append(now)

        release(clock.now())
        clock.on_sleep = release
        arguments = {
            "forward": True,
            "until": date(2025, 10, 3),
            "provider": "alphavantage",
            "provider_url": server.base_url,
            "path": "direct",
            "background": False,
            "clock": clock,
        }
        run = lab.start_run(model, **arguments)
        assert run.status == "completed", run.info.error
        assert broke and [c for c, _ in Recorder.seen] == [datetime(2025, 10, d) for d in (1, 2, 3)]

        server.fail("bad_key", times=100)
        later = FakeClock(datetime(2025, 10, 6, 12, 0, tzinfo=UTC), release)
        until = {"until": date(2025, 10, 7), "clock": later}
        refused = lab.start_run(model, **{**arguments, **until})
        assert refused.status == "failed"
        assert "alphavantage" in refused.info.error and "test-key" not in refused.info.error


def test_an_hourly_forward_run_trades_each_bar_at_its_start_on_the_source_s_slots(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Hourly bars at the times the data shows (10:00 ... 15:00 here), not a fixed grid:
    each step at its bar's start, every sleep straight to the next bar (no late polls)."""
    monkeypatch.setenv("TTG_LAB_DATA_DIR", str(tmp_path / "data"))
    hourly = read_shipped("us_hourly")
    hourly = hourly[hourly["symbol"].isin(TICKERS)].reset_index(drop=True)
    cut = datetime(2025, 10, 6)
    lab = ttg_lab.open(empty_db_url, init=False)
    try:
        history = hourly[hourly["ts"] < cut].reset_index(drop=True)
        load_bars(lab.store, "history", "us", ImportedBars(history, "60min", "test"))
        clock = FakeClock(datetime(2025, 10, 3, 21, 0, tzinfo=UTC))
        future = hourly[(hourly["ts"] >= cut) & (hourly["ts"] < "2025-10-08")]
        source = MemorySource(lab.store, future.reset_index(drop=True), clock, "60min")
        Recorder.seen, Recorder.stepped_at, Recorder.clock = [], [], clock
        Recorder.released = lambda symbol, ts: (symbol, ts) in source.shown
        model = _model(lab)
        run = lab.start_run(
            model,
            "intraday",
            forward=True,
            until=date(2025, 10, 7),
            provider="memory",
            path="direct",
            background=False,
            clock=clock,
            source=source,
        )
        assert run.status == "completed", run.info.error
        labels = sorted(set(future["ts"]))
        assert [c for c, _ in Recorder.seen] == [t.to_pydatetime() for t in labels]
        for bar, at in zip([c for c, _ in Recorder.seen], Recorder.stepped_at, strict=True):
            assert at == bar_start(US, "60min", bar)  # at its start, to the minute
        assert run.info.steps_total == len(labels) == 12
        assert all(s >= 3600 or s == 0 for s in clock.slept[1:])  # never woke to poll a late bar
    finally:
        Recorder.released, Recorder.clock = None, None
        lab.close()


@pytest.mark.parametrize("until", [date(2025, 10, 9), date(2025, 10, 8)])
def test_a_weekday_without_bars_is_passed_over_not_waited_on_forever(
    fresh: Lab, shipped: pd.DataFrame, until: date
) -> None:
    """Oct 8 has no bars here (as on a holiday): the run trades Oct 9 once it shows, and a
    run until Oct 8 ends completed an hour after that day's close."""
    future = _future(shipped)
    future = future[future["ts"] != datetime(2025, 10, 8)].reset_index(drop=True)
    clock = FakeClock(datetime(2025, 10, 6, 21, 0, tzinfo=UTC))
    source = MemorySource(fresh.store, future, clock)
    history = shipped[(shipped["ts"] >= FIRST) & (shipped["ts"] <= "2025-10-06")]
    load_bars(fresh.store, "more", "us", ImportedBars(history.reset_index(drop=True), "1d", "t"))
    run = fresh.start_run(
        _model(fresh),
        forward=True,
        until=until,
        provider="memory",
        path="direct",
        background=False,
        clock=clock,
        source=source,
    )
    assert run.status == "completed"
    traded = [datetime(2025, 10, 7)] + ([datetime(2025, 10, 9)] if until.day == 9 else [])
    assert [c for c, _ in Recorder.seen] == traded
    assert run.info.steps_total == run.info.steps_done == len(traded)
    assert clock.now() < datetime(2025, 10, 10, tzinfo=UTC)  # no waiting on past it
    assert source.polls < 40
