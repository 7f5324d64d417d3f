"""Optional online news sources, asked only when their API key is in the environment.

Each provider returns dated :class:`News`; the caller ranks and filters them with the
same :class:`~ttg_lab.news.search.NewsIndex` as the local corpus, so an online item is
shown only if it was published strictly before the clock, and undated items never are.

Failures (network, HTTP status, odd JSON) give no items and a short note, never an
exception. API keys are never logged, put in notes or returned: notes name only the
provider and the kind of failure.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx

from ttg_lab.market.providers.alphavantage import DEFAULT_BASE_URL, api_key, query_url
from ttg_lab.news.importers import (
    UnusableRecord,
    alphavantage_feed,
    alphavantage_time_param,
    compact_text,
    host_of,
    parse_publish_time,
)
from ttg_lab.news.items import News, make_news, naive_utc, url_problem
from ttg_lab.news.search import NewsHit, NewsIndex, hit_for, published_before

log = logging.getLogger(__name__)

ALPHAVANTAGE_URL = query_url(DEFAULT_BASE_URL)
JINA_KEY_ENV = "JINA_API_KEY"
JINA_URL_ENV = "TTG_LAB_JINA_SEARCH_URL"
JINA_URL = "https://s.jina.ai/"
TIMEOUT_SECONDS = 8.0
MAX_ITEMS = 50


@dataclass(frozen=True)
class ProviderResult:
    """What one provider answered: dated items, and a note when something went wrong.

    ``ranked`` says the items are already in order of relevance to the query (a web
    search); otherwise they are ranked locally like the corpus.
    """

    items: list[News]
    note: str | None = None
    skipped_undated: int = 0
    ranked: bool = False


class OnlineNewsProvider(Protocol):
    """A news source on the internet, asked for items published before a moment."""

    @property
    def name(self) -> str:
        """Short name used in notes (``alphavantage``, ``jina``)."""
        ...

    def fetch(
        self, query: str, before_utc: datetime, symbols: Sequence[str] | None = None
    ) -> ProviderResult:
        """Items for ``query`` the source says were published before ``before_utc``."""
        ...


class HTTPStatusFailure(Exception):
    """An HTTP error status (only the number is kept: nothing that could hold a key)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def get_json(
    url: str, params: Mapping[str, str], headers: Mapping[str, str], timeout: float
) -> Any:
    """GET ``url`` and decode its JSON body.

    Sent through an :class:`httpx.HTTPTransport` rather than an ``httpx.Client``: the
    client logs every request URL at INFO level, and Alpha Vantage takes its key in the
    URL. Redirects are not followed; an error status raises :class:`HTTPStatusFailure`.
    """
    request = httpx.Request(
        "GET",
        url,
        params=dict(params),
        headers=dict(headers),
        extensions={"timeout": httpx.Timeout(timeout).as_dict()},
    )
    with httpx.HTTPTransport() as transport:
        response = transport.handle_request(request)
        try:
            body = response.read()
        finally:
            response.close()
    if response.status_code >= 400:
        raise HTTPStatusFailure(response.status_code)
    return json.loads(body)


def _failure(name: str, exc: BaseException) -> ProviderResult:
    """A keyless note for a failed request (exception texts may hold the URL and key)."""
    if isinstance(exc, HTTPStatusFailure):
        what = f"HTTP {exc.status}"
    elif isinstance(exc, httpx.TimeoutException):
        what = "timed out"
    elif isinstance(exc, httpx.HTTPError):
        what = f"network error ({type(exc).__name__})"
    else:
        what = f"unreadable answer ({type(exc).__name__})"
    log.warning("online news %s: %s", name, what)
    return ProviderResult([], f"{name}: request failed: {what}")


def alphavantage_ticker(symbol: str) -> str:
    """A lab symbol as Alpha Vantage's news ticker (``BTC-USDT`` -> ``CRYPTO:BTC``)."""
    ticker = symbol.strip().upper()
    for suffix in ("-USDT", "-USD"):
        if ticker.endswith(suffix):
            return f"CRYPTO:{ticker.removesuffix(suffix)}"
    return ticker


@dataclass(frozen=True)
class AlphaVantageNews:
    """Alpha Vantage NEWS_SENTIMENT, asked with ``time_to`` = the clock (US/Eastern).

    The API has no free-text search: it is asked for the latest items before the clock
    (for ``symbols`` when given, as ``tickers``), which the caller then ranks.
    """

    api_key: str = field(repr=False)
    base_url: str = ALPHAVANTAGE_URL
    timeout: float = TIMEOUT_SECONDS
    name: str = "alphavantage"

    def fetch(
        self, query: str, before_utc: datetime, symbols: Sequence[str] | None = None
    ) -> ProviderResult:
        params = {
            "function": "NEWS_SENTIMENT",
            "time_to": alphavantage_time_param(before_utc),
            "sort": "LATEST",
            "limit": str(MAX_ITEMS),
            "apikey": self.api_key,
        }
        tickers = [alphavantage_ticker(s) for s in symbols or () if s.strip()]
        if tickers:
            params["tickers"] = ",".join(tickers)
        try:
            document = get_json(self.base_url, params, {"Accept": "application/json"}, self.timeout)
        except Exception as exc:  # any failure is a note, never a crash
            return _failure(self.name, exc)
        if not isinstance(document, dict) or not isinstance(document.get("feed"), list):
            return ProviderResult([], f"{self.name}: no news in the answer (quota or bad key?)")
        result = alphavantage_feed(document)
        return ProviderResult(result.items, None, result.skipped_undated)


def _jina_item(entry: Any) -> News:
    if not isinstance(entry, dict):
        raise UnusableRecord("not an object", undated=False)
    url = entry.get("url")
    if not isinstance(url, str) or url_problem(url.strip()) is not None:
        raise UnusableRecord("no usable http(s) URL", undated=False)
    stamp = entry.get("date") or entry.get("publishedTime")
    published = parse_publish_time(stamp if isinstance(stamp, str) else None)
    if published is None:
        raise UnusableRecord("undated", undated=True)
    title, description, content = (
        value if isinstance(value := entry.get(key), str) else ""
        for key in ("title", "description", "content")
    )
    return make_news(
        source=host_of(url),
        url=url,
        title=title or description[:200] or url,
        summary=" ".join(description.split()),
        content=compact_text(content),
        published_at=published,
    )


def _first_per_url(items: list[News]) -> list[News]:
    """One item per URL, the first given, in the given order."""
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.url not in seen:
            seen.add(item.url)
            unique.append(item)
    return unique


@dataclass(frozen=True)
class JinaSearch:
    """Jina's web search (``s.jina.ai``); results without a date are dropped."""

    api_key: str = field(repr=False)
    base_url: str = JINA_URL
    timeout: float = TIMEOUT_SECONDS
    name: str = "jina"

    def fetch(
        self, query: str, before_utc: datetime, symbols: Sequence[str] | None = None
    ) -> ProviderResult:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "X-Respond-With": "no-content",
        }
        try:
            document = get_json(self.base_url, {"q": query}, headers, self.timeout)
        except Exception as exc:  # any failure is a note, never a crash
            return _failure(self.name, exc)
        data = document.get("data") if isinstance(document, dict) else None
        if not isinstance(data, list):
            return ProviderResult([], f"{self.name}: no results in the answer")
        items: list[News] = []
        undated = 0
        for entry in data:
            try:
                items.append(_jina_item(entry))
            except UnusableRecord as exc:
                undated += exc.undated
            except ValueError:  # e.g. a URL too long for the store
                continue
        return ProviderResult(_first_per_url(items), None, undated, ranked=True)


def configured_providers(env: Mapping[str, str] | None = None) -> list[OnlineNewsProvider]:
    """The providers whose API key is set, read from the environment at call time."""
    env = os.environ if env is None else env
    providers: list[OnlineNewsProvider] = []
    alpha_key = api_key(env)
    if alpha_key:
        providers.append(AlphaVantageNews(alpha_key, query_url(env=env)))
    jina_key = env.get(JINA_KEY_ENV, "").strip()
    if jina_key:
        providers.append(JinaSearch(jina_key, env.get(JINA_URL_ENV, "").strip() or JINA_URL))
    return providers


def search_online(
    providers: Sequence[OnlineNewsProvider],
    query: str,
    before_utc: datetime,
    limit: int = 5,
    symbols: Sequence[str] | None = None,
) -> tuple[list[NewsHit], list[str]]:
    """Ask each provider and keep, at most ``limit`` in all, what was published before.

    Every item passes the corpus's own cut (:func:`~ttg_lab.news.search.published_before`:
    strictly before ``before_utc``; providers drop undated items). Unranked answers are
    ranked by a :class:`NewsIndex` like the corpus; a web search's own order is kept
    (score 0). Returns the hits and the providers' notes.
    """
    before = naive_utc(before_utc)
    hits: list[NewsHit] = []
    notes: list[str] = []
    for provider in providers:
        try:
            result = provider.fetch(query, before, symbols)
        except Exception as exc:  # a provider bug must not end a run either
            result = _failure(provider.name, exc)
        if result.note:
            notes.append(result.note)
        if result.ranked:
            chosen = [hit_for(item, 0.0) for item in published_before(result.items, before)]
        else:
            chosen = NewsIndex(result.items).search(query, before, limit, symbols)
        seen = {hit.url for hit in hits}
        hits += [hit for hit in chosen[:limit] if hit.url not in seen]
    return hits[:limit], notes


__all__ = [
    "AlphaVantageNews",
    "JinaSearch",
    "OnlineNewsProvider",
    "ProviderResult",
    "alphavantage_ticker",
    "configured_providers",
    "search_online",
]
