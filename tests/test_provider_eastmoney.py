"""The eastmoney A-share provider over real HTTP against a kline server of our own whose
answers are built from the shipped A-share bars."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from support.clock import FakeClock
from support.eastmoney_server import EastmoneyServer

from ttg_lab.errors import ConfigError, FetchError, ValidationError
from ttg_lab.market.fetch import fetch_bars
from ttg_lab.market.importers import sort_bars
from ttg_lab.market.markets import get_market
from ttg_lab.market.providers import Parsed, RateLimit, make_provider
from ttg_lab.market.providers.eastmoney import URL_ENV, Eastmoney, secid
from ttg_lab.market.shipped import read_shipped
from ttg_lab.store.database import Store

CN = get_market("cn")


@pytest.fixture(scope="module")
def server() -> Iterator[EastmoneyServer]:
    with EastmoneyServer() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(server: EastmoneyServer) -> None:
    server.heal()
    server.release_until(None)
    server.seen.clear()


def fetch(provider: Eastmoney, symbol: str, interval: str, first: date, last: date) -> list[Parsed]:
    return [
        provider.parse(provider.send(request), CN)
        for request in provider.requests(CN, symbol, interval, first, last)
    ]


def frame_of(parts: list[Parsed]) -> pd.DataFrame:
    return pd.concat([p.bars.frame for p in parts], ignore_index=True)


def shipped(name: str, symbol: str) -> pd.DataFrame:
    frame = read_shipped(name)
    return frame[frame["symbol"] == symbol].reset_index(drop=True)


def assert_same_bars(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Exactly equal bars (volume too: shares -> lots -> shares, as the store compares)."""
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


@pytest.mark.parametrize("symbol", ["600519.SH", "601318.SH", "000016.SH"])
def test_daily_bars_equal_the_shipped_bars_the_answers_were_built_from(
    server: EastmoneyServer, symbol: str
) -> None:
    parts = fetch(Eastmoney(server.base_url), symbol, "1d", date(2025, 6, 1), date(2025, 11, 30))
    assert_same_bars(frame_of(parts), shipped("cn_daily", symbol))
    (seen,) = server.data_requests()
    assert (seen.query["secid"], seen.query["klt"], seen.query["fqt"]) == (
        secid(symbol),
        "101",
        "0",
    )
    assert any("raw prices" in n and "lots to shares" in n for n in parts[0].notes)


def test_hourly_bars_labelled_by_their_end_are_stored_by_their_start(
    server: EastmoneyServer,
) -> None:
    parts = fetch(
        Eastmoney(server.base_url), "600519.SH", "60min", date(2025, 10, 9), date(2025, 11, 19)
    )
    got = frame_of(parts)
    assert_same_bars(got, shipped("cn_hourly", "600519.SH"))
    assert sorted({f"{t:%H:%M}" for t in got["ts"]}) == ["09:30", "10:30", "13:00", "14:00"]
    assert [s.query["klt"] for s in server.data_requests()] == ["60", "60"]  # Oct, Nov
    raw = provider_answer(server, "600519.SH", "60min", date(2025, 11, 3))
    assert '"2025-11-03 10:30,' in raw and '"2025-11-03 15:00,' in raw


def provider_answer(server: EastmoneyServer, symbol: str, interval: str, day: date) -> str:
    provider = Eastmoney(server.base_url)
    (request,) = provider.requests(CN, symbol, interval, day, day)
    return provider.send(request).body.decode()


def test_volume_in_lots_is_stored_in_shares(server: EastmoneyServer) -> None:
    raw = provider_answer(server, "600519.SH", "1d", date(2025, 11, 3))
    lots = float(raw.split('"klines": ["')[1].split(",")[5])
    (parsed,) = fetch(
        Eastmoney(server.base_url), "600519.SH", "1d", date(2025, 11, 3), date(2025, 11, 3)
    )
    assert parsed.bars.frame["volume"].tolist() == [3454766.0]
    assert lots == pytest.approx(34547.66)


def test_requests_go_one_per_year_of_daily_and_per_month_of_hourly_bars() -> None:
    provider = Eastmoney()
    daily = provider.requests(CN, "600519.SH", "1d", date(2024, 3, 5), date(2025, 2, 1))
    assert [(r.first, r.last) for r in daily] == [
        (date(2024, 3, 5), date(2024, 12, 31)),
        (date(2025, 1, 1), date(2025, 2, 1)),
    ]
    assert daily[0].url == "https://push2his.eastmoney.com/api/qt/stock/kline/get"
    assert dict(daily[0].params) == {
        "fields1": "f1,f2,f3,f4,f5,f6",
        "fields2": "f51,f52,f53,f54,f55,f56,f57,f58,f59,f60,f61",
        "ut": "7eea3edcaed734bea9cbfc24409ed989",
        "klt": "101",
        "fqt": "0",
        "secid": "1.600519",
        "beg": "20240305",
        "end": "20241231",
    }
    hourly = provider.requests(CN, "000001.SZ", "60min", date(2025, 10, 20), date(2025, 12, 3))
    assert [(r.first, r.last) for r in hourly] == [
        (date(2025, 10, 20), date(2025, 10, 31)),
        (date(2025, 11, 1), date(2025, 11, 30)),
        (date(2025, 12, 1), date(2025, 12, 3)),
    ]
    assert {dict(r.params)["secid"] for r in hourly} == {"0.000001"}
    assert Eastmoney().limits == (RateLimit(1, 1.0),)


def test_secid_follows_the_exchange_suffix_not_the_first_digit() -> None:
    assert [
        secid(s) for s in ("600519.SH", "000016.SH", "000001.SZ", "300750.SZ", "430047.BJ")
    ] == [
        "1.600519",
        "1.000016",
        "0.000001",
        "0.300750",
        "0.430047",
    ]


def test_a_shenzhen_symbol_is_asked_by_its_secid(server: EastmoneyServer) -> None:
    frame = sort_bars(
        pd.DataFrame(
            {
                "symbol": "000001.SZ",
                "ts": pd.to_datetime(["2025-11-03", "2025-11-04"]),
                "open": [11.5, 11.6],
                "high": [11.8, 11.9],
                "low": [11.4, 11.5],
                "close": [11.6, 11.7],
                "volume": [120_000_00.0, 98_000_00.0],
            }
        )
    )
    with EastmoneyServer({"101": frame}) as shenzhen:
        parts = fetch(
            Eastmoney(shenzhen.base_url), "000001.SZ", "1d", date(2025, 11, 1), date(2025, 11, 5)
        )
        assert_same_bars(frame_of(parts), frame)
        assert shenzhen.data_requests()[0].query["secid"] == "0.000001"


@pytest.mark.parametrize(
    ("fault", "kind", "words"),
    [
        ("unknown_symbol", "unknown_symbol", "no data for secid 1.600519"),
        ("error", "bad_response", "eastmoney answered rc=102"),
        ("rate_limit", "rate_limit", "HTTP 429"),
        ("html", "bad_response", "an HTML page (HTTP status 502)"),
        ("truncated", "bad_response", "truncated or invalid JSON"),
        ("empty", "bad_response", "an empty body"),
    ],
)
def test_every_bad_answer_is_a_fetch_error_of_its_kind_naming_provider_symbol_and_reason(
    server: EastmoneyServer, fault: str, kind: str, words: str
) -> None:
    provider = Eastmoney(server.base_url)
    (request,) = provider.requests(CN, "600519.SH", "1d", date(2025, 11, 3), date(2025, 11, 7))
    server.fail(fault)  # type: ignore[arg-type]
    with pytest.raises(FetchError) as caught:
        provider.parse(provider.send(request), CN)
    error = caught.value
    assert (error.kind, error.provider, error.symbol) == (kind, "eastmoney", "600519.SH")
    assert str(error).startswith("eastmoney 600519.SH: ")
    assert words in str(error)
    assert len(provider.parse(provider.send(request), CN).bars.frame) == 5


def test_a_symbol_eastmoney_does_not_know_is_an_unknown_symbol(server: EastmoneyServer) -> None:
    provider = Eastmoney(server.base_url)
    (request,) = provider.requests(CN, "688999.SH", "1d", date(2025, 11, 3), date(2025, 11, 7))
    with pytest.raises(FetchError) as caught:
        provider.parse(provider.send(request), CN)
    assert caught.value.kind == "unknown_symbol"


def test_a_bad_kline_line_is_refused_naming_it(server: EastmoneyServer) -> None:
    provider = Eastmoney(server.base_url)
    (request,) = provider.requests(CN, "600519.SH", "1d", date(2025, 11, 3), date(2025, 11, 4))
    good = provider.send(request)
    body = good.body.replace(b'"2025-11-04,', b'"2025-11-04,n/a,', 1)
    bad = good.__class__(request, 200, body, good.content_type, good.fetched_at)
    with pytest.raises(FetchError, match=r"eastmoney 600519\.SH: kline 2 is not 'date,open"):
        provider.parse(bad, CN)


def test_released_bars_only(server: EastmoneyServer) -> None:
    server.release_until(datetime(2025, 11, 5, 10, 30))
    provider = Eastmoney(server.base_url)
    (hourly,) = fetch(provider, "600519.SH", "60min", date(2025, 11, 5), date(2025, 11, 5))
    assert [f"{t:%H:%M}" for t in hourly.bars.frame["ts"]] == ["09:30", "10:30"]
    (daily,) = fetch(provider, "600519.SH", "1d", date(2025, 11, 1), date(2025, 11, 10))
    assert daily.bars.frame["ts"].max() == pd.Timestamp("2025-11-05")


def test_an_empty_period_is_no_bars_and_says_so(server: EastmoneyServer) -> None:
    (parsed,) = fetch(
        Eastmoney(server.base_url), "600519.SH", "1d", date(2024, 1, 1), date(2024, 1, 5)
    )
    assert parsed.bars.frame.empty
    assert any("no bars from 2024-01-01 to 2024-01-05" in n for n in parsed.notes)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_answer_is_a_network_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    provider = Eastmoney(url)
    (request,) = provider.requests(CN, "600519.SH", "1d", date(2025, 11, 3), date(2025, 11, 7))
    with pytest.raises(FetchError) as caught:
        provider.send(request, timeout=5)
    assert caught.value.kind == "network"
    assert str(caught.value).startswith(f"eastmoney 600519.SH: no answer from {url}")


def test_an_answer_that_does_not_come_in_time_is_a_network_error(
    server: EastmoneyServer,
) -> None:
    provider = Eastmoney(server.base_url)
    (request,) = provider.requests(CN, "600519.SH", "1d", date(2025, 11, 3), date(2025, 11, 7))
    server.fail("hang")
    with pytest.raises(FetchError) as caught:
        provider.send(request, timeout=0.3)
    assert caught.value.kind == "network"
    assert str(caught.value) == "eastmoney 600519.SH: no answer in 0.3 s"


def test_the_base_url_comes_from_the_argument_or_the_environment(
    server: EastmoneyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert make_provider("eastmoney").base_url == "https://push2his.eastmoney.com"
    monkeypatch.setenv(URL_ENV, server.base_url)
    for provider in (make_provider("eastmoney"), make_provider("eastmoney", server.base_url)):
        assert isinstance(provider, Eastmoney) and provider.base_url == server.base_url
        got = fetch(provider, "600036.SH", "1d", date(2025, 11, 3), date(2025, 11, 3))
        assert len(got[0].bars.frame) == 1
    monkeypatch.setenv(URL_ENV, "push2his.eastmoney.com")
    with pytest.raises(ConfigError, match=r"eastmoney URL 'push2his\.eastmoney\.com' is not an"):
        make_provider("eastmoney")


def test_adjusted_prices_are_a_variant_and_a_bad_one_is_refused() -> None:
    forward = make_provider("eastmoney:forward")
    (request,) = forward.requests(CN, "600519.SH", "1d", date(2025, 1, 1), date(2025, 1, 2))
    assert dict(request.params)["fqt"] == "1"
    with pytest.raises(ValidationError, match="adjustment 'qfq' is not one of none, forward"):
        make_provider("eastmoney:qfq")


def test_a_symbol_interval_or_market_it_does_not_serve_is_refused_naming_it() -> None:
    provider = Eastmoney()
    with pytest.raises(ValidationError, match="'600519' is not an A-share symbol"):
        provider.requests(CN, "600519", "1d", date(2025, 1, 1), date(2025, 1, 2))
    with pytest.raises(ValidationError, match="serves intervals 1d, 60min, not '5min'"):
        provider.requests(CN, "600519.SH", "5min", date(2025, 1, 1), date(2025, 1, 2))
    with pytest.raises(ValidationError, match="serves market cn, not 'us'"):
        provider.requests(get_market("us"), "AAPL", "1d", date(2025, 1, 1), date(2025, 1, 2))
    with pytest.raises(ValidationError, match="period starts 2025-01-03 after it ends 2025-01-02"):
        provider.requests(CN, "600519.SH", "1d", date(2025, 1, 3), date(2025, 1, 2))


@pytest.mark.parametrize(
    ("interval", "name", "symbols", "first", "last"),
    [
        ("1d", "cn_daily", ["600519.SH", "000016.SH"], date(2025, 6, 11), date(2025, 11, 18)),
        ("60min", "cn_hourly", ["600519.SH"], date(2025, 10, 9), date(2025, 11, 19)),
    ],
)
def test_through_the_pipeline_the_fetched_bars_are_the_stored_ones_after_a_rate_limit_wait(
    server: EastmoneyServer,
    db_url: str,
    tmp_path: Path,
    interval: str,
    name: str,
    symbols: list[str],
    first: date,
    last: date,
) -> None:
    store = Store(db_url)
    try:
        clock = FakeClock(datetime(2025, 11, 20, 12, tzinfo=UTC))
        server.fail("rate_limit")
        provider = Eastmoney(server.base_url, clock=clock)
        report = fetch_bars(
            store, provider, "cn", symbols, interval, first, last,
            cache_dir=tmp_path / "raw", clock=clock,
        )  # fmt: skip
    finally:
        store.dispose()
    assert report.ok, [str(r.error) for r in report.results]
    merges = [r.merge for r in report.results]
    expected = [(0, len(shipped(name, s)), ()) for s in symbols]  # all stored identically
    assert [(m.added, m.skipped, m.conflicts) for m in merges if m] == expected
    assert report.waited > 0 and clock.slept  # the 429 waited out on the clock, no real sleep
