"""News: importers on real excerpts, the as-of search, the store, the tool, providers.

The property that matters most: nothing published at or after the clock is ever
returned, and what is returned (and its order) does not depend on later items.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from ttg_lab.broker.costs import COST_PRESETS
from ttg_lab.broker.portfolio import Portfolio
from ttg_lab.engine.context import RunContext
from ttg_lab.errors import DataFileError, ValidationError
from ttg_lab.market.asof import PriceIndex
from ttg_lab.market.markets import get_market
from ttg_lab.news import store as news_store
from ttg_lab.news.importers import (
    parse_alphavantage_time,
    parse_publish_time,
    read_aitrader_search_results,
    read_alphavantage_news,
    read_news_file,
    read_news_jsonl,
    write_news_jsonl,
)
from ttg_lab.news.items import News, make_news
from ttg_lab.news.providers import (
    AlphaVantageNews,
    JinaSearch,
    alphavantage_ticker,
    configured_providers,
    search_online,
)
from ttg_lab.news.search import NewsIndex, tokens
from ttg_lab.news.shipped import read_shipped_news, shipped_news_path, unreliable_reason
from ttg_lab.store.database import Store
from ttg_lab.store.schema import Dataset, NewsItem
from ttg_lab.tools.search import get_information

FIXTURES = Path(__file__).parent / "fixtures" / "news"
ALPHAVANTAGE = FIXTURES / "alphavantage_news.json"
AITRADER_LOG = FIXTURES / "aitrader_log.jsonl"
AITRADER_NEWS_TOOL_LOG = FIXTURES / "aitrader_news_tool_log.jsonl"
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
KEY_ENVS = (
    "ALPHAVANTAGE_API_KEY",
    "ALPHAADVANTAGE_API_KEY",
    "ALPHA_VANTAGE_API_KEY",
    "JINA_API_KEY",
)
SECRET = "sk-test-7f3a9c1e5b2d4f60"


@pytest.fixture(autouse=True)
def _no_online_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here may reach a real provider, whatever the developer's environment."""
    for name in (*KEY_ENVS, "TTG_LAB_ALPHAVANTAGE_URL", "TTG_LAB_JINA_SEARCH_URL"):
        monkeypatch.delenv(name, raising=False)


def news(
    url: str,
    when: datetime,
    title: str = "",
    summary: str = "",
    symbols: tuple[str, ...] = (),
    content: str = "",
) -> News:
    return make_news(
        source="test",
        url=url,
        title=title or url,
        summary=summary,
        content=content,
        published_at=when,
        symbols=symbols,
    )


@pytest.fixture(scope="module")
def shipped() -> list[News]:
    return read_shipped_news(DATA_DIR)


@pytest.fixture(scope="module")
def shipped_index(shipped: list[News]) -> NewsIndex:
    return NewsIndex(shipped)


# --- importers -----------------------------------------------------------------------


def test_alphavantage_excerpt_exact_values() -> None:
    items = read_alphavantage_news(ALPHAVANTAGE)
    assert [(n.title, n.url, n.published_at) for n in items] == [
        (
            "Prediction: Stablecoins Are About to Soar. Here's Why.",
            "https://www.fool.com/investing/2025/08/10/prediction-stablecoins-are-about-to-soar-heres-why/",
            datetime(2025, 8, 10, 14, 30),  # 20250810T103000 US/Eastern (EDT)
        ),
        (
            "Nvidia Is Now Worth $4.6 Trillion, Bitcoin Hits $120,000 - NVIDIA  ( NASDAQ:NVDA )",
            "https://www.benzinga.com/markets/equities/25/10/48000616/nvidia-bitcoin-tech-today-"
            "wall-street-thursday-stock-market-amd-intel",
            datetime(2025, 10, 2, 21, 4, 1),
        ),
        (
            "Morning Minute: Bitcoin Makes Smashing New ATH Over $125k",
            "https://decrypt.co/343019/morning-minute-bitcoin-makes-smashing-new-ath-over-125k",
            datetime(2025, 10, 6, 17, 11, 46),
        ),
        (
            "Brazilian stablecoin opens door to the country's double-digit yields",
            "https://cointelegraph.com/news/brazil-brlv-stablecoin-high-yield-bond-access",
            datetime(2025, 10, 15, 1, 18, 2),  # 20251014T211802 EDT, the next day in UTC
        ),
    ]
    brazil = items[-1]
    assert brazil.source == "Cointelegraph"
    assert brazil.symbols == ("COIN", "FOREX:BRL", "FOREX:USD", "CRYPTO:BTC")
    assert brazil.topics == ("Economy - Monetary", "Financial Markets", "Finance", "Blockchain")
    assert brazil.summary.startswith("Brazil's BRLV stablecoin gives institutions")
    assert brazil.content == ""


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("20251014T211802", datetime(2025, 10, 15, 1, 18, 2)),  # EDT, UTC-4
        ("20251210T120000", datetime(2025, 12, 10, 17, 0)),  # EST, UTC-5
        ("20251102T013000", datetime(2025, 11, 2, 6, 30)),  # repeated hour: the later one
        ("20251014T2118", datetime(2025, 10, 15, 1, 18)),
        ("20251014T21180", None),
        ("20251314T211802", None),
        ("2025-10-14", None),
        ("", None),
    ],
)
def test_alphavantage_times_are_eastern(text: str, utc: datetime | None) -> None:
    assert parse_alphavantage_time(text) == utc


def test_alphavantage_entry_without_time_refuses_the_file(tmp_path: Path) -> None:
    document = json.loads(ALPHAVANTAGE.read_text(encoding="utf-8"))
    document["feed"][2]["time_published"] = ""
    path = tmp_path / "av.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(DataFileError, match="feed item 2") as err:
        read_alphavantage_news(path)
    assert err.value.path == str(path)


def test_aitrader_log_excerpt_returns_only_the_dated_result() -> None:
    result = read_aitrader_search_results(AITRADER_LOG)
    assert (result.skipped_undated, result.skipped_malformed) == (1, 0)
    [item] = result.items
    assert item.url == (
        "https://seekingalpha.com/article/4826982-nvidia-still-the-best-risk-reward-in-ai-hardware"
    )
    assert item.title == "Nvidia: Still The Best Risk-Reward In AI Hardware"
    assert item.published_at == datetime(2025, 9, 30, 17, 31, 51)
    assert item.source == "seekingalpha.com"
    assert item.summary.startswith("Discover why Nvidia Corporation leads AI hardware")
    assert item.content.startswith(
        "Nvidia: Still The Best Risk-Reward In AI Hardware (NASDAQ:NVDA)"
    )
    assert "1548.04" not in item.content  # other tool output after AI-Trader's "..."
    assert "](https://" not in item.content.split("[Stock Ideas]")[0]  # links compacted
    assert all("investopedia" not in n.url for n in result.items)  # 'Publish Time: unknown'


def test_aitrader_title_summary_news_blocks_are_counted_undated() -> None:
    result = read_aitrader_search_results(AITRADER_NEWS_TOOL_LOG)
    assert result.items == []
    assert (result.skipped_undated, result.skipped_malformed) == (20, 0)


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2025-10-29T08:19:00+08:00", datetime(2025, 10, 29, 0, 19)),
        ("Wed, 29 Sep 2021 08:59:31 GMT", datetime(2021, 9, 29, 8, 59, 31)),
        ("2024-12-11T07:15:29.0000000Z", datetime(2024, 12, 11, 7, 15, 29)),
        ("2025-10-05T22:03:46+0000", datetime(2025, 10, 5, 22, 3, 46)),
        ("2025-11-02T07:24:46-05:00", datetime(2025, 11, 2, 12, 24, 46)),
        ("2025-10-01T18:12:41.333Z", datetime(2025, 10, 1, 18, 12, 41, 333000)),
        # no zone: the latest instant the text can mean (UTC-12), never earlier
        ("Fri, 09/26/2025 \u2014 15:30", datetime(2025, 9, 27, 3, 30)),
        ("2025-10-03", datetime(2025, 10, 4, 12, 0)),
        ("May 31, 2025", datetime(2025, 6, 1, 12, 0)),
        ("unknown", None),
        ("", None),
        (None, None),
        ("last Tuesday", None),
        ("2025-13-40T00:00:00Z", None),
    ],
)
def test_publish_time_formats(text: str | None, utc: datetime | None) -> None:
    assert parse_publish_time(text) == utc


def _log_line(*blocks: str) -> str:
    content = "Tool results: \n" + "\n".join(blocks)
    return json.dumps({"signature": "m", "new_messages": [{"role": "user", "content": content}]})


def _block(url: str, when: str, title: str = "T") -> str:
    return f"\nURL: {url}\nTitle: {title}\nDescription: d\nPublish Time: {when}\nContent: c...\n"


def test_aitrader_keeps_the_earliest_time_per_url(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    lines = [
        _log_line(_block("https://a.example/x", "2025-10-02T00:00:00Z", "later")),
        _log_line(_block("https://a.example/x", "2025-10-01T00:00:00Z", "earlier")),
        _log_line(_block("https://a.example/y", "not a time"), "URL: broken block"),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = read_aitrader_search_results(path)
    assert [(n.title, n.published_at) for n in result.items] == [("earlier", datetime(2025, 10, 1))]
    assert (result.skipped_undated, result.skipped_malformed) == (1, 1)


def test_aitrader_broken_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(
        AITRADER_LOG.read_text(encoding="utf-8") + '{"signature": "x", "new_mess\n',
        encoding="utf-8",
    )
    with pytest.raises(DataFileError) as err:
        read_aitrader_search_results(path)
    assert (err.value.path, err.value.line) == (str(path), 4)
    assert f"{path}, line 4" in str(err.value)


def test_jsonl_round_trip_gzip(tmp_path: Path) -> None:
    items = read_alphavantage_news(ALPHAVANTAGE) + read_aitrader_search_results(AITRADER_LOG).items
    path = tmp_path / "news.jsonl.gz"
    write_news_jsonl(reversed(items), path)
    assert read_news_jsonl(path) == sorted(items, key=lambda n: (n.published_at, n.url))
    first = path.read_bytes()
    write_news_jsonl(items, path)
    assert path.read_bytes() == first  # byte-stable (no gzip timestamp)


@pytest.mark.parametrize(
    ("published", "message"),
    [
        (None, "missing or empty 'published_at'"),
        ("", "missing or empty 'published_at'"),
        ("yesterday", "not an ISO date and time"),
        ("2025-10-14", "not an ISO date and time"),
    ],
)
def test_jsonl_bad_published_at_names_the_line(
    tmp_path: Path, published: str | None, message: str
) -> None:
    good = {"url": "https://a.example/1", "title": "ok", "published_at": "2025-10-14T21:18:02Z"}
    bad = {"url": "https://a.example/2", "title": "bad", "published_at": published}
    path = tmp_path / "user.jsonl"
    path.write_text(f"{json.dumps(good)}\n\n{json.dumps(bad)}\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=message) as err:
        read_news_jsonl(path)
    assert err.value.line == 3


def test_jsonl_times_with_offsets_become_utc(tmp_path: Path) -> None:
    path = tmp_path / "user.jsonl"
    rows = [
        {"url": "https://a.example/1", "title": "a", "published_at": "2025-10-14T21:18:02"},
        {"url": "https://a.example/2", "title": "b", "published_at": "2025-10-14T21:18:02+02:00"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    items = read_news_jsonl(path)
    assert [n.published_at for n in items] == [
        datetime(2025, 10, 14, 19, 18, 2),
        datetime(2025, 10, 14, 21, 18, 2),
    ]
    assert items[0].source == "a.example"


def test_format_detection(tmp_path: Path) -> None:
    assert len(read_news_file(ALPHAVANTAGE).items) == 4
    assert read_news_file(AITRADER_LOG).skipped_undated == 1
    with pytest.raises(ValidationError, match="format"):
        read_news_file(tmp_path / "notes.txt")


# --- the shipped corpus --------------------------------------------------------------


def test_shipped_corpus_is_sorted_dated_and_unique(shipped: list[News]) -> None:
    assert shipped_news_path(DATA_DIR).name == "news.jsonl.gz"
    assert len(shipped) >= 50
    assert shipped == sorted(shipped, key=lambda n: (n.published_at, n.url))
    assert len({n.url for n in shipped}) == len(shipped)
    assert all(n.published_at.tzinfo is None for n in shipped)
    assert all(unreliable_reason(n) is None for n in shipped)
    assert not any("live-updates" in n.url for n in shipped)


def test_live_pages_are_unreliable() -> None:
    page = news("https://www.cnbc.com/2025/10/05/stock-market-today-live-updates.html", DAY)
    assert unreliable_reason(page) == "a rolling live page"
    early = news("https://example.com/2025/10/20/story", datetime(2025, 10, 1))
    assert "before the date in its URL" in (unreliable_reason(early) or "")


# --- search --------------------------------------------------------------------------

DAY = datetime(2025, 10, 10, 13, 30)


def test_search_never_returns_the_clock_or_later() -> None:
    index = NewsIndex(
        [
            news("https://a/past", DAY - timedelta(seconds=1), "nvidia chips"),
            news("https://a/now", DAY, "nvidia chips"),
            news("https://a/future", DAY + timedelta(days=1), "nvidia chips"),
        ]
    )
    assert [h.url for h in index.search("nvidia", DAY)] == ["https://a/past"]
    assert index.search("nvidia", DAY - timedelta(seconds=1)) == []
    assert [h.published_at for h in index.search("nvidia", DAY)] == ["2025-10-10T13:29:59Z"]


def test_ranking_prefers_title_matches_and_boosts_symbols() -> None:
    index = NewsIndex(
        [
            news("https://a/title", DAY - timedelta(days=3), "Nvidia earnings beat"),
            news(
                "https://a/body",
                DAY - timedelta(days=1),
                "Chip stocks wrap",
                content="Other names moved; nvidia was flat. " + "Markets were quiet. " * 20,
            ),
            news(
                "https://a/tagged", DAY - timedelta(days=2), "Quarterly results", symbols=("NVDA",)
            ),
            news("https://a/other", DAY - timedelta(days=1), "Apple earnings"),
        ]
    )
    hits = index.search("nvidia earnings", DAY)
    assert [h.url for h in hits][:2] == ["https://a/title", "https://a/other"]
    assert "https://a/tagged" not in [h.url for h in hits]
    boosted = index.search("nvidia earnings", DAY, symbols=["NVDA"])
    assert boosted[0].url == "https://a/title"
    assert "https://a/tagged" in [h.url for h in boosted]
    assert [h.url for h in index.search("NVDA", DAY)] == ["https://a/tagged"]
    assert [h.url for h in index.search("results", DAY, symbols=["CRYPTO:NVDA"])] == [
        "https://a/tagged"
    ]


def test_ties_go_to_the_newer_item_then_the_smaller_url() -> None:
    index = NewsIndex(
        [
            news("https://a/old", DAY - timedelta(days=2), "fed cuts rates"),
            news("https://a/new-b", DAY - timedelta(days=1), "fed cuts rates"),
            news("https://a/new-a", DAY - timedelta(days=1), "fed cuts rates"),
        ]
    )
    hits = index.search("fed rates", DAY, limit=3)
    assert [h.url for h in hits] == ["https://a/new-a", "https://a/new-b", "https://a/old"]
    assert hits[0].score == hits[2].score


@pytest.mark.parametrize("query", ["", "   ", "\n"])
def test_blank_query_is_refused(query: str) -> None:
    with pytest.raises(ValidationError, match="non-empty query"):
        NewsIndex([]).search(query, DAY)


@pytest.mark.parametrize("limit", [0, 51, True, 2.5])
def test_bad_limit_is_refused(limit: Any) -> None:
    with pytest.raises(ValidationError, match="limit"):
        NewsIndex([]).search("x", DAY, limit=limit)


def test_hits_are_compact_and_json_ready() -> None:
    item = news("https://a/long", DAY - timedelta(hours=1), "long story", content="word " * 400)
    [hit] = NewsIndex([item]).search("story", DAY)
    assert len(hit.summary) <= 500 and hit.summary.endswith("\u2026")
    assert json.loads(json.dumps(hit.to_dict()))["url"] == "https://a/long"
    assert hit.source == "test"


def test_chinese_queries_match_by_character_pairs() -> None:
    item = news("https://a/cn", DAY - timedelta(hours=1), "上证指数时隔逾十年突破4000点")
    assert tokens("上证指数") == ["上证", "证指", "指数"]
    assert [h.url for h in NewsIndex([item]).search("上证指数 突破", DAY)] == ["https://a/cn"]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    clock=st.datetimes(min_value=datetime(2021, 1, 1), max_value=datetime(2026, 1, 1)),
    words=st.lists(
        st.sampled_from(
            [
                "nvidia",
                "stock",
                "bitcoin",
                "market",
                "earnings",
                "fed",
                "rate",
                "ai",
                "apple",
                "stablecoin",
                "china",
                "a股",
                "crowdstrike",
                "q3",
                "buy",
                "zzz",
            ]
        ),
        min_size=1,
        max_size=4,
    ),
    symbols=st.sampled_from([None, ["NVDA"], ["COIN", "BTC-USDT"], ["AAPL", "CRWD"]]),
    limit=st.integers(min_value=1, max_value=10),
)
def test_property_search_is_as_of_the_clock(
    shipped: list[News],
    shipped_index: NewsIndex,
    clock: datetime,
    words: list[str],
    symbols: list[str] | None,
    limit: int,
) -> None:
    query = " ".join(words)
    hits = shipped_index.search(query, clock, limit, symbols)
    assert len(hits) <= limit
    assert all(datetime.fromisoformat(h.published_at[:-1]) < clock for h in hits)
    # The same answer as an index that never held the later items: neither the results
    # nor their order depend on anything published at or after the clock.
    past_only = NewsIndex([n for n in shipped if n.published_at < clock])
    assert past_only.search(query, clock, limit, symbols) == hits


# --- the store -----------------------------------------------------------------------


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path}/t.db")
    store.migrate()
    yield store
    store.dispose()


def _rows(store: Store) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(NewsItem)) or 0


def test_load_shipped_news_is_idempotent(store: Store, shipped: list[News]) -> None:
    assert news_store.load_shipped_news(store, DATA_DIR) == len(shipped)
    assert news_store.load_shipped_news(store, DATA_DIR) == 0
    assert _rows(store) == len(shipped)
    assert news_store.read_news(store) == shipped
    with store.session() as session:
        dataset = session.scalars(select(Dataset).where(Dataset.name == "news:shipped")).one()
        assert (dataset.market, dataset.interval, dataset.rows) == ("news", "-", len(shipped))
        assert dataset.fingerprint == news_store.news_fingerprint(shipped)
        # an item deleted behind the lab's back is noticed and reloaded
        session.delete(session.scalars(select(NewsItem).limit(1)).one())
    assert news_store.load_shipped_news(store, DATA_DIR) == len(shipped)
    assert _rows(store) == len(shipped)


def test_load_news_upserts_by_url(store: Store) -> None:
    first = [news("https://a/1", DAY, "one"), news("https://a/2", DAY, "two")]
    assert news_store.load_news(store, first, "mine") == 2
    changed = [replace(first[0], title="one, corrected"), news("https://a/3", DAY, "three")]
    assert news_store.load_news(store, changed, "mine") == 2
    stored = {n.url: n.title for n in news_store.read_news(store)}
    assert stored == {"https://a/1": "one, corrected", "https://a/2": "two", "https://a/3": "three"}
    with pytest.raises(ValidationError, match="source name"):
        news_store.load_news(store, first, " ")


def test_a_failed_load_changes_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    news_store.load_news(store, [news("https://a/1", DAY, "one")], "mine")

    def broken(*_args: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(news_store, "_record_dataset", broken)
    with pytest.raises(RuntimeError):
        news_store.load_news(
            store, [news("https://a/1", DAY, "changed"), news("https://a/2", DAY, "two")], "mine"
        )
    assert [(n.url, n.title) for n in news_store.read_news(store)] == [("https://a/1", "one")]


def test_import_news_file_formats(store: Store, tmp_path: Path) -> None:
    assert news_store.import_news_file(store, ALPHAVANTAGE) == 4
    assert news_store.import_news_file(store, AITRADER_LOG, format="aitrader-log") == 1
    assert news_store.import_news_file(store, ALPHAVANTAGE) == 4  # idempotent
    path = tmp_path / "mine.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(
            json.dumps({"url": "https://a/9", "title": "x", "published_at": "2025-01-01T00:00Z"})
        )
    assert news_store.import_news_file(store, path) == 1
    assert _rows(store) == 6
    with pytest.raises(ValidationError, match="unknown news format"):
        news_store.import_news_file(store, path, format="rss")


# --- the agent tool ------------------------------------------------------------------


def _context(clock: datetime, index: NewsIndex | None, interval: str = "1d") -> RunContext:
    frame = pd.DataFrame(
        {
            "symbol": ["NVDA", "AAPL"],
            "ts": pd.to_datetime([clock, clock]),
            "open": [180.0, 250.0],
            "high": [181.0, 251.0],
            "low": [179.0, 249.0],
            "close": [180.5, 250.5],
            "volume": [1.0, 1.0],
        }
    )
    prices = PriceIndex(frame, "us", interval)
    ctx = RunContext(
        run_id=0,
        market=get_market("us"),
        index=prices,
        tickers=frozenset(prices.symbols),
        portfolio=Portfolio(10_000.0, {}),
        costs=COST_PRESETS["zero"],
        news=index,
    )
    ctx.advance(0, clock)
    return ctx


def test_get_information_searches_before_the_decision_time() -> None:
    # A daily step on 2025-10-10 decides at the 09:30 New York open = 13:30 UTC.
    index = NewsIndex(
        [
            news("https://a/before", datetime(2025, 10, 10, 13, 29), "Nvidia outlook"),
            news("https://a/at-open", datetime(2025, 10, 10, 13, 30), "Nvidia outlook"),
            news("https://a/tagged", datetime(2025, 10, 9), "Chip demand", symbols=("NVDA",)),
        ]
    )
    answer = get_information(_context(datetime(2025, 10, 10), index), "NVDA outlook")
    assert answer["query"] == "NVDA outlook"
    assert answer["as_of"] == "2025-10-10T13:30:00Z"
    # the ticker named in the query boosts the item tagged with it
    assert [r["url"] for r in answer["results"]] == ["https://a/tagged", "https://a/before"]
    assert "note" not in answer
    hourly = get_information(_context(datetime(2025, 10, 10, 14, 0), index, "60min"), "nvidia")
    assert hourly["as_of"] == "2025-10-10T18:00:00Z"
    assert {r["url"] for r in hourly["results"]} == {"https://a/before", "https://a/at-open"}


def test_get_information_without_a_corpus() -> None:
    answer = get_information(_context(datetime(2025, 10, 10), None), "nvidia")
    assert answer["results"] == []
    assert "no news corpus" in answer["note"]
    with pytest.raises(ValidationError):
        get_information(_context(datetime(2025, 10, 10), None), "  ")


# --- online providers against a local fake server ------------------------------------

CLOCK = datetime(2025, 10, 10, 13, 30)  # 09:30 in New York

ALPHAVANTAGE_ANSWER = {
    "items": "4",
    "feed": [
        {
            "title": "Nvidia supply deal",
            "url": "https://example.com/av-past",
            "time_published": "20251009T120000",  # 16:00 UTC the day before
            "summary": "Nvidia signs a supply deal.",
            "source": "Example Wire",
            "ticker_sentiment": [{"ticker": "NVDA"}],
            "topics": [{"topic": "Technology"}],
        },
        {
            "title": "Nvidia at the open",
            "url": "https://example.com/av-at-clock",
            "time_published": "20251010T093000",  # exactly the clock: not before it
            "summary": "Nvidia opens.",
            "source": "Example Wire",
        },
        {
            "title": "Nvidia tomorrow",
            "url": "https://example.com/av-future",
            "time_published": "20251011T100000",
            "summary": "Nvidia news from the future.",
            "source": "Example Wire",
        },
        {
            "title": "Nvidia undated",
            "url": "https://example.com/av-undated",
            "time_published": "",
            "summary": "No time.",
            "source": "Example Wire",
        },
    ],
}

JINA_ANSWER = {
    "code": 200,
    "data": [
        {
            "title": "Chip export rules tighten",
            "url": "https://example.com/jina-past",
            "description": "Export rules for chips.",
            "date": "2025-10-09T08:00:00+00:00",
        },
        {"title": "Undated page", "url": "https://example.com/jina-undated", "date": ""},
        {"title": "No date key", "url": "https://example.com/jina-nodate"},
        {
            "title": "Future page",
            "url": "https://example.com/jina-future",
            "date": "Sat, 11 Oct 2025 08:00:00 GMT",
        },
        {"title": "Older page", "url": "https://example.com/jina-older", "date": "2025-10-01"},
    ],
}


class FakeServer:
    """A canned JSON server on 127.0.0.1; remembers each request's path and headers."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append((self.path, dict(self.headers)))
                route = urlsplit(self.path).path
                body = ALPHAVANTAGE_ANSWER if route == "/query" else JINA_ANSWER
                payload = json.dumps(body).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.close()


def _assert_secret_absent(value: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert SECRET not in json.dumps(value, default=str)
    assert SECRET not in caplog.text
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_providers_come_from_the_environment_at_call_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert configured_providers() == []
    monkeypatch.setenv("ALPHAADVANTAGE_API_KEY", SECRET)
    monkeypatch.setenv("TTG_LAB_ALPHAVANTAGE_URL", "http://127.0.0.1:9/query")
    [alpha] = configured_providers()
    assert isinstance(alpha, AlphaVantageNews) and alpha.base_url == "http://127.0.0.1:9/query"
    assert SECRET not in repr(alpha)
    monkeypatch.setenv("JINA_API_KEY", SECRET)
    assert [p.name for p in configured_providers()] == ["alphavantage", "jina"]


def test_alphavantage_tickers() -> None:
    assert [alphavantage_ticker(s) for s in ("nvda", "BTC-USDT", "ETH-USD")] == [
        "NVDA",
        "CRYPTO:BTC",
        "CRYPTO:ETH",
    ]


def test_alphavantage_provider_keeps_only_the_past(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = AlphaVantageNews(SECRET, f"{server.url}/query")
    result = provider.fetch("nvidia", CLOCK)
    assert result.skipped_undated == 1
    hits, notes = search_online([provider], "nvidia", CLOCK)
    assert [h.url for h in hits] == ["https://example.com/av-past"]
    assert hits[0].published_at == "2025-10-09T16:00:00Z" and notes == []
    query = parse_qs(urlsplit(server.requests[0][0]).query)
    assert query["function"] == ["NEWS_SENTIMENT"]
    assert query["time_to"] == ["20251010T0930"]  # the clock, in New York time
    _assert_secret_absent([h.to_dict() for h in hits] + notes, caplog)


def test_jina_provider_keeps_only_dated_past_results_in_its_order(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = JinaSearch(SECRET, f"{server.url}/")
    hits, notes = search_online([provider], "chip export rules", CLOCK)
    assert [h.url for h in hits] == [
        "https://example.com/jina-past",
        "https://example.com/jina-older",
    ]
    assert hits[1].published_at == "2025-10-02T12:00:00Z"  # a bare date: end of day, UTC-12
    path, headers = server.requests[0]
    assert parse_qs(urlsplit(path).query)["q"] == ["chip export rules"]
    assert headers["Authorization"] == f"Bearer {SECRET}"
    _assert_secret_absent([h.to_dict() for h in hits] + notes, caplog)


def test_provider_failures_are_notes_without_the_key(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.status = 500
    broken = [AlphaVantageNews(SECRET, f"{server.url}/query"), JinaSearch(SECRET, server.url)]
    hits, notes = search_online(broken, "nvidia", CLOCK)
    assert hits == []
    assert notes == ["alphavantage: request failed: HTTP 500", "jina: request failed: HTTP 500"]
    closed = FakeServer()
    closed.close()  # nothing listens on this port any more
    hits, notes = search_online([AlphaVantageNews(SECRET, f"{closed.url}/query")], "x", CLOCK)
    assert hits == [] and notes[0].startswith("alphavantage: request failed: network error")
    _assert_secret_absent(notes, caplog)


def test_get_information_adds_configured_providers(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ALPHA_VANTAGE_API_KEY", SECRET)
    monkeypatch.setenv("TTG_LAB_ALPHAVANTAGE_URL", f"{server.url}/query")
    index = NewsIndex([news("https://a/local", datetime(2025, 10, 9), "Nvidia local story")])
    answer = get_information(_context(datetime(2025, 10, 10), index), "nvidia NVDA")
    assert [r["url"] for r in answer["results"]] == [
        "https://a/local",
        "https://example.com/av-past",
    ]
    query = parse_qs(urlsplit(server.requests[0][0]).query)
    assert query["tickers"] == ["NVDA"]
    _assert_secret_absent(answer, caplog)
