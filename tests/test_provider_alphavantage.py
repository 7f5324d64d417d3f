"""The Alpha Vantage provider, through HTTP against a local server replaying real answers.

Every bad answer Alpha Vantage gives becomes a FetchError of the right kind naming the
provider, the symbol and the reason; the key never shows in a request, an answer, a
message or a log record.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sqlalchemy import delete, select
from support.alphavantage_server import FAULTS, FIXTURES, AlphaVantageServer, Fault
from support.clock import FakeClock

from ttg_lab.errors import ConfigError, FetchError, ValidationError
from ttg_lab.market.fetch import fetch_bars
from ttg_lab.market.importers import read_alpha_vantage_json
from ttg_lab.market.markets import MARKETS
from ttg_lab.market.providers import FetchRequest, RawResponse, make_provider
from ttg_lab.market.providers.alphavantage import AlphaVantage, query_url
from ttg_lab.market.shipped import read_shipped
from ttg_lab.news.fetch import fetch_news
from ttg_lab.news.providers import AlphaVantageNews, configured_providers
from ttg_lab.news.store import news_index, read_news
from ttg_lab.store.database import Store
from ttg_lab.store.schema import NewsItem

FAKE_KEY = "E1FAKEKEY0123456789XYZ"
US = MARKETS["us"]
CRYPTO = MARKETS["crypto"]
FAR_FUTURE = datetime(2100, 1, 1)

EXPECTED_KIND: dict[Fault, str] = {
    "minute_note": "rate_limit",
    "daily_quota": "quota",
    "premium": "premium",
    "unknown_symbol": "unknown_symbol",
    "bad_key": "auth",
    "empty_object": "unknown_symbol",
    "html_502": "bad_response",
    "html_503": "bad_response",
    "truncated": "bad_response",
    "empty_body": "bad_response",
    "http_429": "rate_limit",
}
EXPECTED_REASON: dict[Fault, str] = {
    "minute_note": "rate limit",
    "daily_quota": "quota",
    "premium": "premium",
    "unknown_symbol": "Invalid API call",
    "bad_key": "API key was refused",
    "empty_object": "no data for symbol",
    "html_502": "an HTML page (HTTP status 502)",
    "html_503": "an HTML page (HTTP status 503)",
    "truncated": "truncated or invalid JSON",
    "empty_body": "an empty body",
    "http_429": "HTTP 429",
}


@pytest.fixture()
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("ALPHAADVANTAGE_API_KEY", "ALPHA_VANTAGE_API_KEY", "TTG_LAB_ALPHAVANTAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("TTG_LAB_ALPHAVANTAGE_PREMIUM", raising=False)
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", FAKE_KEY)
    return FAKE_KEY


@pytest.fixture()
def server() -> Iterator[AlphaVantageServer]:
    with AlphaVantageServer() as running:
        yield running


@pytest.fixture()
def provider(server: AlphaVantageServer, key: str) -> AlphaVantage:
    made = make_provider("alphavantage", server.base_url)
    assert isinstance(made, AlphaVantage)
    return made


def _shipped(name: str, symbol: str) -> pd.DataFrame:
    frame = read_shipped(name)
    return frame[frame["symbol"] == symbol].reset_index(drop=True)


def _fetched(
    provider: AlphaVantage, market_code: str, symbol: str, interval: str, first: date, last: date
) -> pd.DataFrame:
    market = MARKETS[market_code]
    frames = [
        provider.parse(provider.send(request), market).bars.frame
        for request in provider.requests(market, symbol, interval, first, last)
    ]
    return pd.concat(frames).sort_values("ts").reset_index(drop=True)


def test_daily_bars_are_the_shipped_daily_bars(provider: AlphaVantage) -> None:
    fetched = _fetched(provider, "us", "AAPL", "1d", date(2025, 6, 10), date(2025, 10, 30))
    pd.testing.assert_frame_equal(fetched, _shipped("us_daily", "AAPL"))


def test_hourly_bars_of_a_month_are_the_shipped_hourly_bars(
    provider: AlphaVantage, server: AlphaVantageServer
) -> None:
    fetched = _fetched(provider, "us", "MSFT", "60min", date(2025, 10, 1), date(2025, 10, 31))
    shipped = _shipped("us_hourly", "MSFT")
    october = shipped[shipped["ts"] < "2025-11-01"].reset_index(drop=True)
    assert len(fetched) == 23 * 6
    pd.testing.assert_frame_equal(fetched, october)
    (query,) = server.queries
    assert query["month"] == "2025-10"
    assert (query["adjusted"], query["extended_hours"], query["outputsize"]) == (
        "false",
        "false",
        "full",
    )
    assert query["interval"] == "60min" and query["datatype"] == "json"


def test_hourly_period_is_one_request_per_month(provider: AlphaVantage) -> None:
    planned = provider.requests(US, "AAPL", "60min", date(2025, 9, 15), date(2025, 11, 3))
    assert [dict(r.params)["month"] for r in planned] == ["2025-09", "2025-10", "2025-11"]
    assert [(r.first, r.last) for r in planned] == [
        (date(2025, 9, 15), date(2025, 9, 30)),
        (date(2025, 10, 1), date(2025, 10, 31)),
        (date(2025, 11, 1), date(2025, 11, 3)),
    ]


def test_a_free_key_asks_compact_and_says_when_the_period_starts_earlier(
    provider: AlphaVantage,
) -> None:
    (request,) = provider.requests(US, "AAPL", "1d", date(2025, 1, 2), date(2025, 10, 30))
    assert dict(request.params)["outputsize"] == "compact"
    parsed = provider.parse(provider.send(request), US)
    assert len(parsed.bars.frame) == 100
    assert any("last 100 daily bars" in note and "2025-01-02" in note for note in parsed.notes)
    (recent,) = provider.requests(US, "AAPL", "1d", date(2025, 8, 1), date(2025, 10, 30))
    assert provider.parse(provider.send(recent), US).notes == ()


def test_no_free_key_note_when_the_answer_was_not_cut(
    provider: AlphaVantage, server: AlphaVantageServer
) -> None:
    """Fewer than 100 bars in a compact answer is the symbol's whole history: no note."""
    server.release_until(datetime(2025, 9, 30))
    (request,) = provider.requests(US, "AAPL", "1d", date(2025, 1, 2), date(2025, 9, 30))
    parsed = provider.parse(provider.send(request), US)
    assert len(parsed.bars.frame) < 100 and parsed.notes == ()


def test_a_premium_key_asks_the_full_daily_history(
    server: AlphaVantageServer, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTG_LAB_ALPHAVANTAGE_PREMIUM", "1")
    premium = make_provider("alphavantage", server.base_url)
    (request,) = premium.requests(US, "AAPL", "1d", date(2025, 1, 2), date(2025, 10, 30))
    assert dict(request.params)["outputsize"] == "full"
    assert [str(limit) for limit in premium.limits] == ["75 requests a minute"]
    with pytest.raises(FetchError) as caught:  # the server's key is a free one
        premium.parse(premium.send(request), US)
    assert caught.value.kind == "premium"
    monkeypatch.setenv("TTG_LAB_ALPHAVANTAGE_PREMIUM", "maybe")
    with pytest.raises(ConfigError, match="'maybe'"):
        make_provider("alphavantage", server.base_url)


def test_free_limits_are_declared(provider: AlphaVantage) -> None:
    assert [str(limit) for limit in provider.limits] == [
        "5 requests a minute",
        "25 requests a day",
    ]


@pytest.mark.parametrize("coin", ["BTC", "LTC"])
def test_crypto_daily_bars_are_the_shipped_bars(
    provider: AlphaVantage, server: AlphaVantageServer, coin: str
) -> None:
    """BTC is served in the current shape ("1. open"), LTC in the older one
    ("1a. open (USD)"): both parse to the bars they were rebuilt from."""
    symbol = f"{coin}-USDT"
    (request,) = provider.requests(CRYPTO, symbol, "1d", date(2025, 8, 1), date(2025, 11, 15))
    assert dict(request.params) == {
        "function": "DIGITAL_CURRENCY_DAILY",
        "symbol": coin,
        "market": "USD",
        "datatype": "json",
    }
    parsed = provider.parse(provider.send(request), CRYPTO)
    shipped = _shipped("crypto_daily", symbol)
    expected = shipped[shipped["ts"] >= "2025-08-01"].reset_index(drop=True)
    pd.testing.assert_frame_equal(parsed.bars.frame, expected)
    assert any("USD" in note for note in parsed.notes)


@pytest.mark.parametrize(
    ("market", "symbol", "interval", "problem"),
    [
        ("crypto", "CD5", "1d", "'CD5'"),
        ("crypto", "BTC-USDT", "60min", "'60min'"),
        ("cn", "600519.SH", "1d", "'cn'"),
        ("us", "not a symbol", "1d", "'not a symbol'"),
    ],
)
def test_what_it_cannot_serve_is_refused_naming_it(
    provider: AlphaVantage, market: str, symbol: str, interval: str, problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        provider.requests(MARKETS[market], symbol, interval, date(2025, 8, 1), date(2025, 9, 1))


@pytest.mark.parametrize("fault", FAULTS)
def test_every_bad_answer_is_a_fetch_error_of_its_kind_without_the_key(
    provider: AlphaVantage,
    server: AlphaVantageServer,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
) -> None:
    caplog.set_level(logging.DEBUG)
    (request,) = provider.requests(US, "NVDA", "1d", date(2025, 8, 1), date(2025, 10, 30))
    server.fail(fault)
    response = provider.send(request)
    with pytest.raises(FetchError) as caught:
        provider.parse(response, US)
    error = caught.value
    assert error.kind == EXPECTED_KIND[fault]
    assert (error.provider, error.symbol) == ("alphavantage", "NVDA")
    message = str(error)
    assert message.startswith("alphavantage NVDA: ") and EXPECTED_REASON[fault] in message
    assert len(message) < 300
    if error.kind == "rate_limit":
        assert error.retry_after == 60
    assert server.queries[-1]["apikey"] == FAKE_KEY  # the key was sent...
    kept = [message, request.shown(), json.dumps(request.params), request.key]
    kept += [response.body.decode("utf-8", "replace"), response.request.shown()]
    kept += [record.getMessage() for record in caplog.records]
    assert not [text for text in kept if FAKE_KEY in text]  # ...and is kept nowhere


def test_an_answer_echoing_the_key_is_kept_masked(
    provider: AlphaVantage, server: AlphaVantageServer
) -> None:
    (request,) = provider.requests(US, "AAPL", "1d", date(2025, 8, 1), date(2025, 10, 30))
    server.fail("daily_quota")
    response = provider.send(request)
    assert b"We have detected your API key as *** and" in response.body
    assert FAKE_KEY.encode() not in response.body


def test_an_unknown_symbol_is_named(provider: AlphaVantage) -> None:
    (request,) = provider.requests(US, "ZZZZ", "1d", date(2025, 8, 1), date(2025, 10, 30))
    with pytest.raises(FetchError, match="alphavantage ZZZZ: unknown symbol") as caught:
        provider.parse(provider.send(request), US)
    assert caught.value.kind == "unknown_symbol"


def test_json_without_a_time_series_is_a_bad_response(provider: AlphaVantage) -> None:
    (request,) = provider.requests(US, "AAPL", "1d", date(2025, 8, 1), date(2025, 10, 30))
    response = provider.send(request)
    odd = replace(response, body=json.dumps({"Meta Data": {"2. Symbol": "AAPL"}}).encode())
    with pytest.raises(FetchError, match="alphavantage AAPL: no 'Time Series") as caught:
        provider.parse(odd, US)
    assert caught.value.kind == "bad_response"


def test_without_a_key_nothing_is_sent(
    provider: AlphaVantage, server: AlphaVantageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALPHAVANTAGE_API_KEY")
    (request,) = provider.requests(US, "AAPL", "1d", date(2025, 8, 1), date(2025, 10, 30))
    with pytest.raises(FetchError, match="ALPHAVANTAGE_API_KEY") as caught:
        provider.send(request)
    assert caught.value.kind == "auth"
    assert server.queries == []


@pytest.mark.parametrize("name", ["ALPHAADVANTAGE_API_KEY", "ALPHA_VANTAGE_API_KEY"])
def test_the_other_key_spellings_work(
    provider: AlphaVantage,
    server: AlphaVantageServer,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    monkeypatch.delenv("ALPHAVANTAGE_API_KEY")
    monkeypatch.setenv(name, "OTHERKEY42")
    (request,) = provider.requests(US, "AAPL", "1d", date(2025, 8, 1), date(2025, 10, 30))
    provider.parse(provider.send(request), US)
    assert server.queries[-1]["apikey"] == "OTHERKEY42"


def test_no_answer_is_a_network_error_without_the_key(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = make_provider("alphavantage", f"http://127.0.0.1:{port}")
    (request,) = closed.requests(US, "AAPL", "1d", date(2025, 8, 1), date(2025, 10, 30))
    with pytest.raises(FetchError) as caught:
        closed.send(request, timeout=2)
    assert caught.value.kind == "network" and "alphavantage AAPL: no answer" in str(caught.value)
    assert FAKE_KEY not in str(caught.value)
    assert not [r for r in caplog.records if FAKE_KEY in r.getMessage()]


@pytest.mark.parametrize("suffix", ["", "/", "/query", "/query/"])
def test_base_url_comes_from_the_argument_or_the_environment(
    server: AlphaVantageServer, key: str, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    given = server.base_url + suffix
    assert query_url(given) == f"{server.base_url}/query"
    for provider in (
        make_provider("alphavantage", given),
        _with_env(monkeypatch, given),
    ):
        assert provider.base_url == server.base_url
        (request,) = provider.requests(US, "AAPL", "1d", date(2025, 8, 1), date(2025, 10, 30))
        assert request.url == f"{server.base_url}/query"
        provider.parse(provider.send(request), US)
    assert server.counts[("TIME_SERIES_DAILY", "AAPL")] == 2


def _with_env(monkeypatch: pytest.MonkeyPatch, url: str) -> AlphaVantage:
    monkeypatch.setenv("TTG_LAB_ALPHAVANTAGE_URL", url)
    made = make_provider("alphavantage")
    assert isinstance(made, AlphaVantage)
    return made


def test_the_default_base_url_is_the_public_host(key: str) -> None:
    provider = make_provider("alphavantage")
    assert provider.base_url == "https://www.alphavantage.co"
    (request,) = provider.requests(US, "AAPL", "1d", date(2025, 8, 1), date(2025, 10, 30))
    assert request.url == "https://www.alphavantage.co/query"


@pytest.mark.parametrize("bad", ["ftp://example.com", "not a url", "http://", "http://h/?a=1"])
def test_a_bad_base_url_is_refused_naming_it(key: str, bad: str) -> None:
    with pytest.raises(ConfigError, match="is not an http"):
        make_provider("alphavantage", bad)


def test_released_bars_only_are_served(provider: AlphaVantage, server: AlphaVantageServer) -> None:
    server.release_until(datetime(2025, 10, 15, 12, 0))
    (request,) = provider.requests(US, "AAPL", "60min", date(2025, 10, 1), date(2025, 10, 31))
    frame = provider.parse(provider.send(request), US).bars.frame
    assert frame["ts"].max() == pd.Timestamp("2025-10-15 12:00")
    server.release_until(datetime(2025, 10, 15, 13, 0))
    frame = provider.parse(provider.send(request), US).bars.frame
    assert frame["ts"].max() == pd.Timestamp("2025-10-15 13:00")
    assert server.counts[("TIME_SERIES_INTRADAY", "AAPL")] == 2


def test_the_file_reader_and_the_provider_share_one_parser(provider: AlphaVantage) -> None:
    from_file = read_alpha_vantage_json(FIXTURES / "TIME_SERIES_DAILY_MSFT.json").frame
    fetched = _fetched(provider, "us", "MSFT", "1d", date(2025, 6, 10), date(2025, 10, 30))
    pd.testing.assert_frame_equal(fetched, from_file)
    old = read_alpha_vantage_json(FIXTURES / "DIGITAL_CURRENCY_DAILY_LTC.json", symbol="LTC-USDT")
    assert old.interval == "1d" and len(old.frame) == 107


def test_requests_carry_no_secret_and_a_stable_key(provider: AlphaVantage) -> None:
    (request,) = provider.requests(US, "AAPL", "1d", date(2025, 8, 1), date(2025, 10, 30))
    assert isinstance(request, FetchRequest)
    assert "apikey" not in dict(request.params)
    (again,) = provider.requests(US, "AAPL", "1d", date(2025, 8, 1), date(2025, 10, 30))
    assert again.key == request.key


# --- NEWS_SENTIMENT into the news store ----------------------------------------------

NEWS_FEED = json.loads((FIXTURES / "NEWS_SENTIMENT.json").read_text(encoding="utf-8"))["feed"]
NEWS_URLS = [entry["url"] for entry in NEWS_FEED]
UNDATED_URL = "https://example.com/news/undated-item-for-tests"
BRAZIL_URL = "https://cointelegraph.com/news/brazil-brlv-stablecoin-high-yield-bond-access"
NEWS_START = datetime(2025, 8, 1)
NEWS_END = datetime(2025, 10, 31)


@pytest.fixture()
def news_store(db_url: str) -> Store:
    """A store without the fixture's items (the shipped corpus holds the same sample)."""
    store = Store(db_url)
    with store.session() as session:
        session.execute(delete(NewsItem).where(NewsItem.url.in_(NEWS_URLS)))
    return store


def _stored(store: Store) -> dict[str, datetime | None]:
    with store.session() as session:
        rows = session.execute(
            select(NewsItem.url, NewsItem.published_at).where(NewsItem.url.in_(NEWS_URLS))
        )
        return {url: published for url, published in rows}


def test_fetched_news_is_stored_with_utc_publish_times(
    provider: AlphaVantage, server: AlphaVantageServer, news_store: Store
) -> None:
    report = fetch_news(news_store, provider, ["BTC-USDT"], NEWS_START, NEWS_END)
    assert (report.merge.added, report.merge.undated, report.merge.skipped) == (21, 1, 0)
    stored = _stored(news_store)
    assert len(stored) == 21
    assert stored[BRAZIL_URL] == datetime(2025, 10, 15, 1, 18, 2)  # 21:18:02 EDT
    (query,) = server.queries
    assert query["tickers"] == "CRYPTO:BTC" and query["function"] == "NEWS_SENTIMENT"
    assert (query["time_from"], query["time_to"]) == ("20250731T2000", "20251030T2000")
    assert all(FAKE_KEY.encode() not in r.body for r in report.responses)
    assert "21 added (1 undated" in report.summary()


def test_an_undated_item_is_stored_and_never_served(
    provider: AlphaVantage, news_store: Store
) -> None:
    fetch_news(news_store, provider, [], NEWS_START, NEWS_END)
    assert _stored(news_store)[UNDATED_URL] is None
    assert UNDATED_URL not in {item.url for item in read_news(news_store)}
    hits = news_index(news_store).search(
        "Alpha Vantage listed without publish time", FAR_FUTURE, 50
    )
    assert UNDATED_URL not in {hit.url for hit in hits}


def test_a_dated_item_is_served_only_after_its_publish_time(
    provider: AlphaVantage, news_store: Store
) -> None:
    fetch_news(news_store, provider, [], NEWS_START, NEWS_END)
    published = datetime(2025, 10, 15, 1, 18, 2)
    query = "Brazilian stablecoin BRLV yields"
    at = news_index(news_store).search(query, published, 50)
    after = news_index(news_store).search(query, published + timedelta(seconds=1), 50)
    assert BRAZIL_URL not in {hit.url for hit in at}
    assert BRAZIL_URL in {hit.url for hit in after}


def test_fetching_the_same_news_again_adds_nothing(
    provider: AlphaVantage, news_store: Store
) -> None:
    fetch_news(news_store, provider, [], NEWS_START, NEWS_END)
    before = _stored(news_store)
    again = fetch_news(news_store, provider, [], NEWS_START, NEWS_END)
    assert (again.merge.added, again.merge.skipped) == (0, 21)
    assert _stored(news_store) == before


def test_news_pages_back_by_time_to_until_the_period_is_covered(
    provider: AlphaVantage, server: AlphaVantageServer, news_store: Store
) -> None:
    report = fetch_news(news_store, provider, [], NEWS_START, NEWS_END, limit=5)
    assert report.pages > 3
    assert len(_stored(news_store)) == 21
    ends = [q["time_to"] for q in server.queries]
    assert ends == sorted(ends, reverse=True) and len(set(ends)) == len(ends)


def test_a_bad_news_page_stores_nothing(
    provider: AlphaVantage, server: AlphaVantageServer, news_store: Store
) -> None:
    def second_page_fails(request: FetchRequest) -> RawResponse:
        if server.queries:
            server.fail("daily_quota")
        return provider.send(request)

    with pytest.raises(FetchError) as caught:
        fetch_news(news_store, provider, [], NEWS_START, NEWS_END, limit=5, send=second_page_fails)
    assert caught.value.kind == "quota" and FAKE_KEY not in str(caught.value)
    assert _stored(news_store) == {}


@pytest.mark.parametrize("given", ["", "/query"])
def test_online_news_takes_the_same_base_url_and_keys(
    server: AlphaVantageServer, key: str, given: str
) -> None:
    """The search tool's online news reads the URL and key as the provider does: a base
    URL with or without ``/query``, and the ``ALPHAVANTAGE_API_KEY`` spelling."""
    env = {"ALPHAVANTAGE_API_KEY": FAKE_KEY, "TTG_LAB_ALPHAVANTAGE_URL": server.base_url + given}
    (online,) = configured_providers(env)
    assert isinstance(online, AlphaVantageNews)
    assert online.base_url == f"{server.base_url}/query"
    result = online.fetch("bitcoin", datetime(2025, 10, 20), ["BTC-USDT"])
    assert result.note is None and BRAZIL_URL in {item.url for item in result.items}
    assert server.queries[-1]["apikey"] == FAKE_KEY


@pytest.mark.parametrize(
    ("status", "body", "kind", "reason"),
    [
        (500, b'{"error": "internal"}', "bad_response", "HTTP status 500"),
        (404, b"Not Found", "bad_response", "HTTP status 404"),
        (200, b"[1, 2]", "bad_response", "a JSON list, not an object"),
        (200, b'{"Information": "Something else."}', "bad_response", "no data in the answer"),
        (
            200,
            b'{"Information": "This API function (TIME_SERIES_DAILY_ADJUSTED) does not exist."}',
            "bad_response",
            "no data in the answer",
        ),
        (200, b"\xff\xfe", "bad_response", "truncated or invalid JSON"),
    ],
)
def test_other_bad_answers_are_bad_responses(
    provider: AlphaVantage, status: int, body: bytes, kind: str, reason: str
) -> None:
    (request,) = provider.requests(US, "AAPL", "1d", date(2025, 8, 1), date(2025, 10, 30))
    response = RawResponse(request, status, body, "application/json", datetime(2025, 11, 1))
    with pytest.raises(FetchError) as caught:
        provider.parse(response, US)
    assert caught.value.kind == kind and str(caught.value).startswith("alphavantage AAPL: ")
    assert reason in str(caught.value)


# --- through the fetch pipeline ------------------------------------------------------


def test_the_pipeline_merges_its_bars_waiting_out_a_rate_limit_on_the_clock(
    provider: AlphaVantage, server: AlphaVantageServer, db_url: str, tmp_path: Path
) -> None:
    clock = FakeClock(datetime(2025, 11, 12, tzinfo=UTC))
    server.fail("minute_note")
    cache = tmp_path / "cache"
    report = fetch_bars(
        Store(db_url), provider, "us", ["AAPL", "MSFT"], "60min", date(2025, 10, 1),
        date(2025, 11, 10), cache_dir=cache, clock=clock,
    )  # fmt: skip
    assert report.ok, report.summary()
    merged = [r.merge for r in report.results if r.merge]
    assert [m.added + m.skipped for m in merged] == [174, 174]  # the shipped bars, all
    assert 60 in clock.slept  # the per-minute note was waited out on the clock, not slept
    assert server.counts[("TIME_SERIES_INTRADAY", "AAPL")] == 3  # 2 months + the retry
    kept = [path.read_bytes() for path in cache.rglob("*") if path.is_file()]
    assert kept and not [body for body in kept if FAKE_KEY.encode() in body]


def test_the_pipeline_stops_at_a_used_up_quota_without_keeping_the_key(
    provider: AlphaVantage, server: AlphaVantageServer, db_url: str, tmp_path: Path
) -> None:
    clock = FakeClock(datetime(2025, 11, 12, tzinfo=UTC))
    server.fail("daily_quota")
    cache = tmp_path / "cache"
    report = fetch_bars(
        Store(db_url), provider, "us", ["AAPL", "MSFT"], "1d", date(2025, 8, 1),
        date(2025, 10, 30), cache_dir=cache, clock=clock,
    )  # fmt: skip
    assert [r.error.kind for r in report.results if isinstance(r.error, FetchError)] == [
        "quota",
        "quota",
    ]
    assert FAKE_KEY not in report.summary()
    assert not [p for p in cache.rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]


def test_requests_share_one_transport(
    provider: AlphaVantage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each new transport costs ~60 ms (its TLS context): a provider builds one."""
    built: list[httpx.HTTPTransport] = []

    class Counted(httpx.HTTPTransport):
        def __init__(self) -> None:
            super().__init__()
            built.append(self)

    monkeypatch.setattr(httpx, "HTTPTransport", Counted)
    for symbol in ("AAPL", "MSFT", "NVDA"):
        (request,) = provider.requests(US, symbol, "1d", date(2025, 8, 1), date(2025, 10, 30))
        provider.parse(provider.send(request), US)
    assert len(built) == 1


def test_the_pipeline_reports_what_the_provider_noted_of_its_answers(
    provider: AlphaVantage, db_url: str, tmp_path: Path
) -> None:
    """A free key's daily answer holds the last 100 bars only: a fetch from further back
    says so in its report, beside what it merged."""
    clock = FakeClock(datetime(2025, 11, 12, tzinfo=UTC))
    report = fetch_bars(
        Store(db_url), provider, "us", ["AAPL"], "1d", date(2025, 1, 2), date(2025, 10, 30),
        cache_dir=tmp_path / "cache", clock=clock,
    )  # fmt: skip
    (result,) = report.results
    assert result.ok, report.summary()
    assert any("last 100 daily bars only" in note for note in result.notes), result.notes
    assert "last 100 daily bars only" in result.summary()
