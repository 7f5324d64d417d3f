"""The fetch pipeline: plan, rate-limited send on an injected clock, raw-answer cache,
parse, checks, merge, per symbol; over real HTTP to a bar server of our own on 127.0.0.1
(tests/support/bar_server.py), on both databases."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from support.bar_server import BarServer, BarsProvider

from ttg_lab.errors import FetchError, ValidationError
from ttg_lab.market.fetch import (
    FetchProgress,
    FetchReport,
    fetch_bars,
    fetched_datasets,
    is_fresh,
    load_name,
    update_datasets,
)
from ttg_lab.market.loader import (
    BarConflictError,
    fingerprint,
    list_datasets,
    list_loads,
    read_price_frame,
)
from ttg_lab.market.markets import get_market
from ttg_lab.market.providers.base import FetchRequest, RawResponse
from ttg_lab.market.responses import ResponseCache
from ttg_lab.market.shipped import read_shipped
from ttg_lab.ratelimit import RateLimit
from ttg_lab.store.database import Store

SHIFT = pd.Timedelta(weeks=21)
"""The shipped bars moved past the store's (weekdays kept): bars the store lacks."""
NOV, DEC = date(2025, 11, 1), date(2025, 12, 31)


class FakeClock:
    """A clock whose sleep moves its time on at once (no real sleep)."""

    def __init__(self, start: datetime) -> None:
        self.time = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.time

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        self.slept.append(seconds)
        self.time += timedelta(seconds=max(0.0, seconds))
        return bool(stop is not None and stop.is_set())


def eastern(day: str, hour: int = 12, minute: int = 0) -> datetime:
    """An aware UTC time given in New York time."""
    local = pd.Timestamp(f"{day} {hour:02d}:{minute:02d}", tz="America/New_York")
    return local.tz_convert(UTC).to_pydatetime()


@pytest.fixture(scope="module")
def served() -> dict[str, pd.DataFrame]:
    bars = {}
    for interval, name in (("1d", "us_daily"), ("60min", "us_hourly")):
        frame = read_shipped(name)
        frame = frame[frame["symbol"].isin(["AAPL", "MSFT", "NVDA"])].copy()
        frame["ts"] = frame["ts"] + SHIFT
        bars[interval] = frame.reset_index(drop=True)
    return bars


@pytest.fixture()
def server(served: dict[str, pd.DataFrame]) -> Iterator[BarServer]:
    with BarServer({k: v.copy() for k, v in served.items()}) as running:
        yield running


@pytest.fixture()
def store(db_url: str) -> Iterator[Store]:
    opened = Store(db_url)
    yield opened
    opened.dispose()


def stored(store: Store, symbol: str, interval: str = "1d") -> pd.DataFrame:
    frame = read_price_frame(store, "us", interval, [symbol], start="2025-11-01")
    return frame.reset_index(drop=True)


def expected(served: dict[str, pd.DataFrame], symbol: str, last: str) -> pd.DataFrame:
    frame = served["1d"]
    frame = frame[(frame["symbol"] == symbol) & (frame["ts"] <= pd.Timestamp(last))]
    return frame.reset_index(drop=True)


def fetch(
    store: Store,
    server: BarServer,
    tmp_path: Path,
    clock: FakeClock,
    *,
    symbols: Sequence[str] = ("AAPL", "MSFT"),
    interval: str = "1d",
    first: date = NOV,
    last: date = DEC,
    limits: tuple[RateLimit, ...] = (),
    on_progress: Callable[[FetchProgress], None] | None = None,
    replace: bool = False,
    stop: threading.Event | None = None,
) -> FetchReport:
    """A fetch from the test server, its answers cached in the test's folder."""
    return fetch_bars(
        store,
        BarsProvider(server.base_url, limits),
        "us",
        symbols,
        interval,
        first,
        last,
        cache_dir=tmp_path / "cache",
        clock=clock,
        on_progress=on_progress,
        replace=replace,
        stop=stop,
    )


def test_fetch_merges_the_periods_bars_and_records_their_answers(
    store: Store, server: BarServer, served: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    report = fetch(store, server, tmp_path, FakeClock(eastern("2026-01-05")))
    assert report.ok, report.summary()
    assert [r.symbol for r in report.results] == ["AAPL", "MSFT"]
    assert [r.sent for r in report.results] == [2, 2]  # November and December
    for symbol in ("AAPL", "MSFT"):
        want = expected(served, symbol, "2025-12-31")
        pd.testing.assert_frame_equal(stored(store, symbol), want)
    added = [r.merge.added for r in report.results if r.merge is not None]
    assert added == [len(expected(served, s, "2025-12-31")) for s in ("AAPL", "MSFT")]
    loads = list_loads(store).set_index("name")
    row = loads.loc[load_name("testbars", "us", "1d", "AAPL")]
    aapl = report.results[0]
    assert all(sha in row["source"] for sha in aapl.responses) and len(aapl.responses) == 2
    assert "testbars" in row["source"] and "SECRET-KEY" not in row["source"]
    log = [r for r in ResponseCache(tmp_path / "cache").loads() if r.symbol == "AAPL"]
    assert log[-1].responses == aapl.responses
    assert log[-1].fingerprint == fingerprint(stored(store, "AAPL"))
    cached = list((tmp_path / "cache").rglob("*.body"))
    assert len(cached) == 4
    assert not any("SECRET-KEY" in p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert fetched_datasets(store)[0].symbols == ("AAPL", "MSFT")


def test_the_dataset_list_names_a_fetch_once_with_its_symbol_count(
    store: Store, server: BarServer, tmp_path: Path
) -> None:
    """One load per fetched symbol is provenance; the dataset list shows them as one."""
    fetch(
        store, server, tmp_path, FakeClock(eastern("2026-01-05")), symbols=("AAPL", "MSFT", "NVDA")
    )
    (row,) = list_datasets(store).query("market == 'us' and interval == '1d'")["source"]
    assert row.split(", ")[-1] == "fetch:testbars:us:1d (3 symbols)", row


def test_refetch_sends_no_request_and_skips_every_bar(
    store: Store, server: BarServer, tmp_path: Path
) -> None:
    clock = FakeClock(eastern("2026-01-05"))
    fetch(store, server, tmp_path, clock)
    asked = server.total
    again = fetch(store, server, tmp_path, clock)
    assert server.total == asked
    assert again.sent == 0 and again.reused == 4
    assert all(
        r.merge is not None and r.merge.added == 0 and r.merge.skipped for r in again.results
    )


def test_an_answer_is_asked_again_once_a_bar_may_have_completed_since(
    store: Store, server: BarServer, tmp_path: Path
) -> None:
    clock = FakeClock(eastern("2025-12-10", 12))  # the 10th's bar is still open
    fetch(store, server, tmp_path, clock, symbols=["AAPL"])
    clock.time = eastern("2025-12-10", 15)  # no bar ended since: the cache answers
    assert fetch(store, server, tmp_path, clock, symbols=["AAPL"]).sent == 0
    clock.time = eastern("2025-12-10", 17)  # the day's bar closed at 16:00: ask again
    report = fetch(store, server, tmp_path, clock, symbols=["AAPL"])
    assert report.results[0].sent == 1 and report.results[0].reused == 1  # November reused
    assert stored(store, "AAPL")["ts"].max() == pd.Timestamp("2025-12-10")


@pytest.mark.parametrize("interval", ["1d", "60min"])
def test_a_bar_still_open_is_not_stored_but_its_open_is_reported(
    store: Store, server: BarServer, tmp_path: Path, interval: str
) -> None:
    if interval == "1d":
        clock, open_start = FakeClock(eastern("2025-12-10", 11)), datetime(2025, 12, 10)
        first, last = NOV, DEC
    else:
        clock, open_start = FakeClock(eastern("2026-03-03", 12, 15)), datetime(2026, 3, 3, 12)
        first, last = date(2026, 3, 1), date(2026, 3, 31)
    server.open_bar = ("AAPL", open_start, 123.25)
    report = fetch(
        store, server, tmp_path, clock, symbols=["AAPL"], interval=interval, first=first, last=last
    )
    assert report.ok, report.summary()
    assert [(p.symbol, p.ts, p.open) for p in report.pending] == [("AAPL", open_start, 123.25)]
    bars = stored(store, "AAPL", interval)
    assert pd.Timestamp(open_start) not in set(bars["ts"])
    assert bars["ts"].max() < pd.Timestamp(open_start)


def test_a_rate_limit_wait_is_reported_and_waited_on_the_clock(
    store: Store, server: BarServer, tmp_path: Path
) -> None:
    clock = FakeClock(eastern("2026-01-05"))
    events: list[FetchProgress] = []
    started = time.monotonic()
    report = fetch(
        store,
        server,
        tmp_path,
        clock,
        limits=(RateLimit(3, 60),),
        on_progress=events.append,
    )
    assert time.monotonic() - started < 10  # no real sleep of 60 s
    assert report.ok and report.waited == pytest.approx(60.0)
    waits = [e for e in events if e.waiting]
    assert [e.message for e in waits] == ["waiting 60 s: testbars allows 3 requests a minute"]
    assert clock.slept == [pytest.approx(60.0)]


def test_a_rate_limit_answer_is_waited_out_and_asked_again(
    store: Store, server: BarServer, tmp_path: Path
) -> None:
    server.fail("AAPL", "minute")
    clock = FakeClock(eastern("2026-01-05"))
    events: list[FetchProgress] = []
    report = fetch(store, server, tmp_path, clock, symbols=["AAPL"], on_progress=events.append)
    assert report.ok and report.results[0].sent == 3
    assert [e.message for e in events if e.waiting] == [
        "waiting 60 s: testbars answered 5 calls per minute"
    ]
    assert clock.slept == [60.0]


def test_a_used_up_quota_stops_the_fetch_and_a_rerun_resumes(
    store: Store, server: BarServer, served: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    server.fail("MSFT", "quota")
    clock = FakeClock(eastern("2026-01-05"))
    report = fetch(store, server, tmp_path, clock, symbols=["AAPL", "MSFT", "NVDA"])
    assert not report.ok
    kinds = {
        r.symbol: (r.error.kind if isinstance(r.error, FetchError) else None)
        for r in report.results
    }
    assert kinds == {"AAPL": None, "MSFT": "quota", "NVDA": "quota"}
    assert "run again after the reset to resume" in str(report.results[2].error)
    assert server.counts[("NVDA", "2025-11")] == 0
    assert stored(store, "MSFT").empty
    rerun = fetch(store, server, tmp_path, clock, symbols=["AAPL", "MSFT", "NVDA"])
    assert rerun.ok, rerun.summary()
    assert [r.sent for r in rerun.results] == [0, 2, 2]
    for symbol in ("AAPL", "MSFT", "NVDA"):
        pd.testing.assert_frame_equal(stored(store, symbol), expected(served, symbol, "2025-12-31"))


def test_the_days_quota_of_the_limits_stops_the_fetch_without_sleeping_for_hours(
    store: Store, server: BarServer, tmp_path: Path
) -> None:
    clock = FakeClock(eastern("2026-01-05"))
    report = fetch(
        store, server, tmp_path, clock, symbols=["AAPL", "MSFT"], limits=(RateLimit(3, 86_400),)
    )
    assert report.results[0].ok
    assert isinstance(report.results[1].error, FetchError)
    assert report.results[1].error.kind == "quota"
    assert sum(clock.slept) < 3600
    assert server.total == 3


def test_a_bad_answer_merges_nothing_of_its_symbol_and_names_it(
    store: Store, server: BarServer, served: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    server.fail("AAPL", "truncated")  # November's answer is cut short
    clock = FakeClock(eastern("2026-01-05"))
    report = fetch(store, server, tmp_path, clock)
    aapl, msft = report.results
    assert str(aapl.error) == "testbars AAPL: a truncated or invalid JSON body"
    assert stored(store, "AAPL").empty
    assert msft.ok and not stored(store, "MSFT").empty
    server.fail("AAPL", "ok", "html")  # November fine this time, December an HTML page
    report = fetch(store, server, tmp_path, clock, symbols=["AAPL"])
    assert str(report.results[0].error) == "testbars AAPL: an HTML page (HTTP 502)"
    assert stored(store, "AAPL").empty
    rerun = fetch(store, server, tmp_path, clock, symbols=["AAPL"])
    assert rerun.ok and rerun.results[0].sent == 1  # only the bad answer is asked again
    pd.testing.assert_frame_equal(stored(store, "AAPL"), expected(served, "AAPL", "2025-12-31"))


def test_bars_that_fail_the_checks_merge_nothing_and_name_provider_and_symbol(
    store: Store, server: BarServer, tmp_path: Path
) -> None:
    daily = server.bars["1d"]
    row = daily.index[(daily["symbol"] == "AAPL") & (daily["ts"] == pd.Timestamp("2025-12-10"))]
    daily.loc[row, "high"] = daily.loc[row, "low"] / 2
    report = fetch(store, server, tmp_path, FakeClock(eastern("2026-01-05")), symbols=["AAPL"])
    error = report.results[0].error
    assert isinstance(error, FetchError) and str(error).startswith("testbars AAPL: ")
    assert "2025-12-10" in str(error)
    assert stored(store, "AAPL").empty


def test_bars_differing_from_the_stored_ones_are_refused_unless_replace(
    store: Store, server: BarServer, tmp_path: Path
) -> None:
    clock = FakeClock(eastern("2025-12-15", 18))
    fetch(store, server, tmp_path, clock, symbols=["AAPL"])
    daily = server.bars["1d"]
    row = daily.index[(daily["symbol"] == "AAPL") & (daily["ts"] == pd.Timestamp("2025-12-10"))]
    daily.loc[row, "close"] = daily.loc[row, "close"] + 0.01  # the provider revised a bar
    clock.time = eastern("2026-01-06")  # December's answer is stale: asked again
    refused = fetch(store, server, tmp_path, clock, symbols=["AAPL"])
    assert isinstance(refused.results[0].error, BarConflictError)
    assert "2025-12-10" in str(refused.results[0].error)
    replaced = fetch(store, server, tmp_path, clock, symbols=["AAPL"], replace=True)
    assert replaced.results[0].merge is not None and replaced.results[0].merge.replaced == 1


def test_a_stop_ends_the_fetch_between_requests(
    store: Store, server: BarServer, tmp_path: Path
) -> None:
    stop = threading.Event()

    def on_progress(event: FetchProgress) -> None:
        if event.symbol == "MSFT":
            stop.set()

    report = fetch(
        store,
        server,
        tmp_path,
        FakeClock(eastern("2026-01-05")),
        symbols=["AAPL", "MSFT", "NVDA"],
        on_progress=on_progress,
        stop=stop,
    )
    assert [r.symbol for r in report.results] == ["AAPL"]
    assert report.stopped == ("MSFT", "NVDA") and not report.ok
    assert server.counts[("MSFT", "2025-11")] == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"symbols": ["AAPL", "not a symbol"]}, "'not a symbol': not us symbols"),
        ({"symbols": []}, "no symbols to fetch"),
        ({"interval": "5min"}, "interval '5min'"),
        ({"first": DEC, "last": NOV}, "the start 2025-12-31 is after the end 2025-11-01"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_asked(
    store: Store, server: BarServer, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        fetch(store, server, tmp_path, FakeClock(eastern("2026-01-05")), **change)
    assert server.total == 0


def test_update_brings_a_fetched_dataset_up_to_its_last_complete_bar(
    store: Store, server: BarServer, tmp_path: Path
) -> None:
    server.release_until(datetime(2025, 11, 20))
    clock = FakeClock(eastern("2025-11-21", 9))
    fetch(store, server, tmp_path, clock, first=NOV, last=date(2025, 11, 21))
    assert stored(store, "AAPL")["ts"].max() == pd.Timestamp("2025-11-20")
    server.release_until(None)
    clock.time = eastern("2025-12-10", 12)
    provider = BarsProvider(server.base_url)
    reports = update_datasets(
        store, lambda name: provider, cache_dir=tmp_path / "cache", clock=clock
    )
    assert len(reports) == 1 and reports[0].ok, reports[0].summary()
    assert reports[0].first == date(2025, 11, 17) and reports[0].last == date(2025, 12, 10)
    for symbol in ("AAPL", "MSFT"):
        assert stored(store, symbol)["ts"].max() == pd.Timestamp("2025-12-09")
    assert {p.symbol for p in reports[0].pending} == {"AAPL", "MSFT"}


def test_a_half_written_answer_never_reads_as_one(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    request = FetchRequest("p", "AAPL", "1d", "http://127.0.0.1/x", (("a", "1"),), NOV, DEC)
    response = RawResponse(request, 200, b'{"bars": []}', "application/json", datetime.now(UTC))
    cache.put(response)
    assert cache.get(request) == response
    body = next(tmp_path.rglob("*.body"))
    body.write_bytes(b'{"ba')  # a kill between the body and its meta file
    assert cache.get(request) is None


def test_freshness_follows_the_markets_calendar() -> None:
    us = get_market("us")
    days = (date(2025, 12, 1), date(2025, 12, 31))
    daily = FetchRequest("p", "AAPL", "1d", "u", (), *days)
    noon = RawResponse(daily, 200, b"", "", eastern("2025-12-05", 12))
    assert is_fresh(noon, us, datetime(2025, 12, 5, 15, 59))
    assert not is_fresh(noon, us, datetime(2025, 12, 5, 16, 0))  # the day's bar closed
    hourly = FetchRequest("p", "AAPL", "60min", "u", (), *days)
    friday_night = RawResponse(hourly, 200, b"", "", eastern("2025-12-05", 17))
    assert is_fresh(friday_night, us, datetime(2025, 12, 8, 9, 30))  # nothing over the weekend
    assert not is_fresh(friday_night, us, datetime(2025, 12, 8, 9, 31))  # a session minute
    old_month = FetchRequest("p", "AAPL", "60min", "u", (), date(2025, 11, 1), date(2025, 11, 30))
    answered = RawResponse(old_month, 200, b"", "", eastern("2025-12-01", 11))
    assert is_fresh(answered, us, datetime(2026, 6, 1, 12))  # its days were over


def test_alpha_vantage_answers_flow_through_the_pipeline_keyless_and_quota_stops(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.alphavantage_server import AlphaVantageServer

    from ttg_lab.market.providers import make_provider

    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "AVKEY-E3-RECOGNISABLE")
    october = (date(2025, 10, 1), date(2025, 10, 31))
    clock = FakeClock(eastern("2025-12-01"))
    with AlphaVantageServer() as av:
        provider = make_provider("alphavantage", av.base_url)
        report = fetch_bars(
            store, provider, "us", ["AAPL", "MSFT"], "60min", *october,
            cache_dir=tmp_path / "cache", clock=clock,
        )  # fmt: skip
        assert report.ok, report.summary()
        shipped = read_shipped("us_hourly")
        for result in report.results:
            assert result.merge is not None and result.merge.added == 0  # the shipped bars
            month = shipped[(shipped["symbol"] == result.symbol) & (shipped["ts"] < "2025-11-01")]
            assert result.merge.skipped == len(month[month["ts"] >= "2025-10-01"])
        files = list((tmp_path / "cache").rglob("*"))
        assert not any("AVKEY-E3" in p.read_text() for p in files if p.is_file())
        av.fail("daily_quota")
        quota = fetch_bars(
            store, provider, "us", ["NVDA", "AAPL"], "1d", date(2025, 10, 1), date(2025, 10, 30),
            cache_dir=tmp_path / "cache", clock=clock,
        )  # fmt: skip
    assert [type(r.error).__name__ for r in quota.results] == ["FetchError", "FetchError"]
    assert [r.error.kind for r in quota.results if isinstance(r.error, FetchError)] == [
        "quota",
        "quota",
    ]
    assert "AVKEY-E3" not in quota.results[0].error.__str__()


def test_a_symbol_the_provider_cannot_ask_for_refuses_the_fetch_before_any_request(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.alphavantage_server import AlphaVantageServer

    from ttg_lab.market.providers import make_provider

    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "test-key")
    with AlphaVantageServer() as av:
        with pytest.raises(ValidationError, match="not 'CD5'"):
            fetch_bars(
                store, make_provider("alphavantage", av.base_url), "crypto", ["BTC-USDT", "CD5"],
                "1d", date(2025, 11, 1), date(2025, 11, 14),
                cache_dir=tmp_path / "cache", clock=FakeClock(datetime(2025, 11, 20, tzinfo=UTC)),
            )  # fmt: skip
        assert sum(av.counts.values()) == 0
