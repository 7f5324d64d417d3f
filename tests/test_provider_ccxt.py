"""The ccxt provider over real HTTP against a Binance-protocol server of our own whose
klines are built from the shipped crypto bars."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from support.binance_server import BinanceServer
from support.clock import FakeClock

from ttg_lab.errors import ConfigError, FetchError, ValidationError
from ttg_lab.market.fetch import fetch_bars
from ttg_lab.market.markets import get_market
from ttg_lab.market.providers import Parsed, RateLimit, make_provider
from ttg_lab.market.providers.ccxt_exchange import CcxtExchange, url_env
from ttg_lab.market.shipped import read_shipped
from ttg_lab.store.database import Store

pytest.importorskip("ccxt")

CRYPTO = get_market("crypto")
FIRST, LAST = date(2024, 11, 26), date(2025, 11, 15)
"""The shipped crypto_daily period."""


@pytest.fixture(scope="module")
def server() -> Iterator[BinanceServer]:
    with BinanceServer() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(server: BinanceServer) -> None:
    server.heal()
    server.release_until(None)
    server.seen.clear()


def fetch(
    provider: CcxtExchange, symbol: str, first: date = FIRST, last: date = LAST
) -> list[Parsed]:
    return [
        provider.parse(provider.send(request), CRYPTO)
        for request in provider.requests(CRYPTO, symbol, "1d", first, last)
    ]


def frame_of(parts: list[Parsed]) -> pd.DataFrame:
    return pd.concat([p.bars.frame for p in parts], ignore_index=True)


def shipped(symbol: str) -> pd.DataFrame:
    frame = read_shipped("crypto_daily")
    return frame[frame["symbol"] == symbol].reset_index(drop=True)


def test_daily_bars_equal_the_shipped_bars_the_klines_were_built_from(
    server: BinanceServer,
) -> None:
    provider = CcxtExchange("binance", server.base_url)
    for symbol in ("BTC-USDT", "ETH-USDT", "ADA-USDT"):
        parts = fetch(provider, symbol)
        pd.testing.assert_frame_equal(frame_of(parts), shipped(symbol))
        assert all(p.bars.interval == "1d" for p in parts)
        assert any("pair " + symbol.replace("-", "/") in n for n in parts[0].notes)
    klines = server.data_requests()
    assert {s.query["symbol"] for s in klines} == {"BTCUSDT", "ETHUSDT", "ADAUSDT"}
    assert {s.query["interval"] for s in klines} == {"1d"}


def test_pages_split_at_the_page_limit_and_join_without_gaps_or_overlap(
    server: BinanceServer,
) -> None:
    provider = CcxtExchange("binance", server.base_url, page_limit=100)
    requests = provider.requests(CRYPTO, "BTC-USDT", "1d", FIRST, LAST)
    assert [dict(r.params)["limit"] for r in requests] == ["100", "100", "100", "55"]
    parts = fetch(provider, "BTC-USDT")
    assert [len(p.bars.frame) for p in parts] == [100, 100, 100, 55]
    pd.testing.assert_frame_equal(frame_of(parts), shipped("BTC-USDT"))
    sent = server.data_requests()
    assert len(sent) == 4
    assert all(int(s.query["limit"]) <= 100 for s in sent)


def test_default_pages_ask_1000_bars_each_and_follow_each_other() -> None:
    provider = CcxtExchange("binance")
    hourly = provider.requests(CRYPTO, "BTC-USDT", "60min", date(2025, 1, 1), date(2025, 3, 31))
    params = [dict(r.params) for r in hourly]
    assert [p["limit"] for p in params] == ["1000", "1000", "160"]  # 90 days x 24 = 2160 bars
    assert [p["timeframe"] for p in params] == ["1h"] * 3
    starts = [int(p["since"]) for p in params]
    assert starts[0] == int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
    assert [b - a for a, b in itertools.pairwise(starts)] == [3_600_000_000] * 2
    assert (hourly[0].first, hourly[-1].last) == (date(2025, 1, 1), date(2025, 3, 31))
    assert hourly[1].first == date(2025, 2, 11)  # 1000 hours after Jan 1 00:00 UTC
    again = provider.requests(CRYPTO, "BTC-USDT", "60min", date(2025, 1, 1), date(2025, 3, 31))
    assert [r.key for r in again] == [r.key for r in hourly]


def test_pages_are_fetched_over_http_across_the_exchanges_1000_bar_limit(
    server: BinanceServer,
) -> None:
    hours = pd.date_range("2025-01-01", periods=2160, freq="h")
    frame = pd.DataFrame(
        {
            "symbol": "BTC-USDT",
            "ts": hours,
            "open": 100.0 + pd.RangeIndex(2160) * 0.5,
            "high": 200.0 + pd.RangeIndex(2160) * 0.5,
            "low": 50.0,
            "close": 101.0 + pd.RangeIndex(2160) * 0.5,
            "volume": 3.25,
        }
    )
    with BinanceServer({"1h": frame}) as hourly_server:
        provider = CcxtExchange("binance", hourly_server.base_url)
        requests = provider.requests(
            CRYPTO, "BTC-USDT", "60min", date(2025, 1, 1), date(2025, 3, 31)
        )
        parts = [provider.parse(provider.send(r), CRYPTO) for r in requests]
        assert [len(p.bars.frame) for p in parts] == [1000, 1000, 160]
        got = frame_of(parts)
        assert got["ts"].tolist() == hours.tolist()
        assert got["open"].tolist() == frame["open"].tolist()
        assert [int(s.query["limit"]) for s in hourly_server.data_requests()] == [1000, 1000, 160]


@pytest.mark.parametrize(
    ("fault", "kind", "words"),
    [
        ("unknown_symbol", "unknown_symbol", "Invalid symbol"),
        ("rate_limit", "rate_limit", "HTTP 429"),
        ("banned", "rate_limit", "HTTP 418"),
        ("html", "bad_response", "an HTML page (HTTP 502)"),
        ("truncated", "bad_response", "truncated or invalid JSON"),
        ("empty", "bad_response", "an empty body"),
        ("error", "bad_response", "An unknown error occurred"),
    ],
)
def test_every_bad_answer_is_a_fetch_error_of_its_kind_naming_provider_symbol_and_reason(
    server: BinanceServer, fault: str, kind: str, words: str
) -> None:
    provider = CcxtExchange("binance", server.base_url)
    request = provider.requests(CRYPTO, "BTC-USDT", "1d", date(2025, 1, 1), date(2025, 1, 31))[0]
    provider.send(request)  # the markets are loaded; the fault hits the klines
    server.fail(fault, retry_after=7)  # type: ignore[arg-type]
    with pytest.raises(FetchError) as caught:
        provider.parse(provider.send(request), CRYPTO)
    error = caught.value
    assert (error.kind, error.provider, error.symbol) == (kind, "ccxt:binance", "BTC-USDT")
    assert str(error).startswith("ccxt:binance BTC-USDT: ")
    assert words in str(error)
    if kind == "rate_limit":
        assert error.retry_after == 7
        assert "retry after 7 s" in str(error)
    server.heal()
    assert len(provider.parse(provider.send(request), CRYPTO).bars.frame) == 31


def test_a_rate_limit_without_retry_after_says_no_wait(server: BinanceServer) -> None:
    provider = CcxtExchange("binance", server.base_url)
    request = provider.requests(CRYPTO, "BTC-USDT", "1d", date(2025, 1, 1), date(2025, 1, 2))[0]
    server.fail("rate_limit")
    with pytest.raises(FetchError) as caught:
        provider.send(request)
    assert (caught.value.kind, caught.value.retry_after) == ("rate_limit", None)


def test_a_bad_answer_to_the_markets_request_names_it(server: BinanceServer) -> None:
    provider = CcxtExchange("binance", server.base_url)
    server.fail("html", path="/api/v3/exchangeInfo")
    request = provider.requests(CRYPTO, "BTC-USDT", "1d", date(2025, 1, 1), date(2025, 1, 2))
    with pytest.raises(FetchError) as caught:
        provider.send(request[0])
    assert caught.value.kind == "bad_response"
    assert "an HTML page (HTTP 502), not the exchange's markets" in str(caught.value)


@pytest.mark.parametrize("symbol", ["FOO-USDT", "CD5"])
def test_a_pair_the_exchange_does_not_list_is_an_unknown_symbol(
    server: BinanceServer, symbol: str
) -> None:
    provider = CcxtExchange("binance", server.base_url)
    request = provider.requests(CRYPTO, symbol, "1d", date(2025, 1, 1), date(2025, 1, 2))[0]
    with pytest.raises(FetchError) as caught:
        provider.send(request)
    assert caught.value.kind == "unknown_symbol"
    assert str(caught.value).startswith(f"ccxt:binance {symbol}: binance has no spot pair")


def test_a_bare_coin_is_quoted_in_the_markets_currency_or_the_providers_quote() -> None:
    assert CcxtExchange("binance").pair(CRYPTO, "BTC") == "BTC/USDT"
    assert CcxtExchange("binance", quote="USDC").pair(CRYPTO, "BTC") == "BTC/USDC"
    assert CcxtExchange("binance", quote="USDC").pair(CRYPTO, "ETH-USDT") == "ETH/USDT"
    with pytest.raises(ValidationError, match="'btc usdt' is not a crypto symbol"):
        CcxtExchange("binance").pair(CRYPTO, "btc usdt")


def test_prices_in_another_quote_than_the_markets_currency_are_said_so(
    server: BinanceServer,
) -> None:
    provider = CcxtExchange("binance", server.base_url)
    request = provider.requests(CRYPTO, "BTC-USDT", "1d", date(2025, 1, 1), date(2025, 1, 2))[0]
    usd = CRYPTO.__class__(**{**CRYPTO.__dict__, "currency": "USD"})
    notes = provider.parse(provider.send(request), usd).notes
    assert any("USDT is not the market's USD" in n for n in notes)


def test_an_empty_page_inside_the_history_is_no_bars_and_says_so(server: BinanceServer) -> None:
    provider = CcxtExchange("binance", server.base_url)
    (parsed,) = fetch(provider, "BTC-USDT", date(2024, 1, 1), date(2024, 1, 10))
    assert parsed.bars.frame.empty
    assert list(parsed.bars.frame.columns) == list(shipped("BTC-USDT").columns)
    assert any("no bars from 2024-01-01 to 2024-01-10" in n for n in parsed.notes)


def test_released_bars_only_and_the_raw_body_is_the_exchanges_kline_json(
    server: BinanceServer,
) -> None:
    server.release_until(datetime(2025, 11, 10))
    provider = CcxtExchange("binance", server.base_url)
    request = provider.requests(CRYPTO, "SOL-USDT", "1d", date(2025, 11, 1), date(2025, 11, 15))[0]
    answer = provider.send(request)
    parsed = provider.parse(answer, CRYPTO)
    assert parsed.bars.frame["ts"].max() == pd.Timestamp("2025-11-10")
    rows = json.loads(answer.body)
    assert rows == [r for r in server.klines[("SOLUSDT", "1d")] if int(r[0]) >= 1761955200000][:10]
    assert answer.status == 200 and answer.content_type.startswith("application/json")
    server.release_until(datetime(2025, 11, 11))
    assert len(provider.parse(provider.send(request), CRYPTO).bars.frame) == 11


def test_bars_outside_the_page_are_dropped(server: BinanceServer) -> None:
    provider = CcxtExchange("binance", server.base_url, page_limit=5)
    first, second = provider.requests(CRYPTO, "BTC-USDT", "1d", date(2025, 1, 1), date(2025, 1, 10))
    whole = provider.send(first)
    wide = whole.__class__(second, 200, whole.body, whole.content_type, whole.fetched_at)
    assert provider.parse(wide, CRYPTO).bars.frame.empty  # its bars are the first page's


def test_a_cached_answer_parses_the_same_without_the_network(server: BinanceServer) -> None:
    request = CcxtExchange("binance", server.base_url).requests(
        CRYPTO, "LTC-USDT", "1d", date(2025, 3, 1), date(2025, 3, 31)
    )[0]
    answer = CcxtExchange("binance", server.base_url).send(request)
    seen = len(server.seen)
    offline = CcxtExchange("binance", "http://127.0.0.1:9")
    got = offline.parse(answer, CRYPTO).bars.frame
    assert len(server.seen) == seen
    expected = shipped("LTC-USDT")
    expected = expected[(expected["ts"] >= "2025-03-01") & (expected["ts"] <= "2025-03-31")]
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_answer_is_a_network_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    provider = CcxtExchange("binance", url)
    request = provider.requests(CRYPTO, "BTC-USDT", "1d", date(2025, 1, 1), date(2025, 1, 2))[0]
    with pytest.raises(FetchError) as caught:
        provider.send(request, timeout=5)
    assert caught.value.kind == "network"
    assert str(caught.value).startswith(f"ccxt:binance BTC-USDT: no answer from {url}")


def test_an_answer_that_does_not_come_in_time_is_a_network_error(server: BinanceServer) -> None:
    provider = CcxtExchange("binance", server.base_url)
    request = provider.requests(CRYPTO, "BTC-USDT", "1d", date(2025, 1, 1), date(2025, 1, 2))[0]
    provider.send(request)
    server.fail("hang")
    with pytest.raises(FetchError) as caught:
        provider.send(request, timeout=0.3)
    assert caught.value.kind == "network"
    assert str(caught.value) == "ccxt:binance BTC-USDT: no answer in 0.3 s"


def test_the_base_url_from_the_argument_or_the_environment_replaces_every_api_host(
    server: BinanceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = make_provider("ccxt")
    assert default.name == "ccxt:binance" and default.base_url == "https://api.binance.com"
    assert default.limits == (RateLimit(20, 1.0),)  # binance's rateLimit: 50 ms
    monkeypatch.setenv(url_env("binance"), server.base_url)
    for provider in (make_provider("ccxt:binance"), make_provider("ccxt", server.base_url)):
        assert isinstance(provider, CcxtExchange)
        assert provider.base_url == server.base_url
        urls = _strings(provider._exchange.urls["api"])
        assert len(urls) > 10 and all(u.startswith(server.base_url + "/") for u in urls)
        assert (
            len(fetch(provider, "XRP-USDT", date(2025, 5, 1), date(2025, 5, 3))[0].bars.frame) == 3
        )
    monkeypatch.setenv(url_env("binance"), "ftp://example")
    with pytest.raises(ConfigError, match=r"\$TTG_LAB_CCXT_BINANCE_URL 'ftp://example' is not"):
        make_provider("ccxt")


def _strings(urls: object) -> list[str]:
    if isinstance(urls, dict):
        return [u for value in urls.values() for u in _strings(value)]
    return [urls] if isinstance(urls, str) else []


def test_an_exchange_ccxt_does_not_know_or_a_bad_page_limit_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match="ccxt has no exchange 'nosuchexchange'"):
        make_provider("ccxt:nosuchexchange")
    with pytest.raises(ValidationError, match=r"page_limit must be 1\.\.1000 bars, not 1001"):
        CcxtExchange("binance", page_limit=1001)
    with pytest.raises(ValidationError, match="serves intervals 1d, 60min, not '5min'"):
        CcxtExchange("binance").requests(CRYPTO, "BTC-USDT", "5min", FIRST, LAST)
    with pytest.raises(ValidationError, match="serves market crypto, not 'us'"):
        CcxtExchange("binance").requests(get_market("us"), "AAPL", "1d", FIRST, LAST)


def test_without_ccxt_installed_the_provider_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ccxt", None)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[crypto\]"'):
        make_provider("ccxt:binance")


def test_importing_the_lab_and_its_providers_never_imports_ccxt() -> None:
    code = (
        "import sys, ttg_lab, ttg_lab.market.providers as p; "
        "assert 'ccxt' in p.PROVIDERS; assert 'ccxt' not in sys.modules, 'ccxt imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_through_the_pipeline_the_fetched_bars_are_the_stored_ones_after_a_rate_limit_wait(
    server: BinanceServer, db_url: str, tmp_path: Path
) -> None:
    store = Store(db_url)
    try:
        clock = FakeClock(datetime(2025, 11, 20, tzinfo=UTC))
        server.fail("rate_limit", retry_after=7)
        provider = CcxtExchange("binance", server.base_url, clock=clock)
        report = fetch_bars(
            store, provider, "crypto", ["BTC-USDT", "SUI-USDT"], "1d", FIRST, LAST,
            cache_dir=tmp_path / "raw", clock=clock,
        )  # fmt: skip
    finally:
        store.dispose()
    assert report.ok, report.summary()
    merges = [r.merge for r in report.results]
    assert [(m.added, m.skipped, m.conflicts) for m in merges if m] == [(0, 355, ())] * 2
    assert 7 in clock.slept and report.waited >= 7
