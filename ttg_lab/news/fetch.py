"""Fetch Alpha Vantage NEWS_SENTIMENT for a period into the news store.

Alpha Vantage has no cursor: pages are asked latest first, each with ``time_to`` moved
back to the oldest item the previous page held, until a page is not full or reaches
``time_from``. Publish times become UTC (read as US/Eastern:
:data:`~ttg_lab.news.importers.ALPHAVANTAGE_TIMEZONE`); items without one are stored
and never served. Everything fetched is merged in one transaction after the last page
(:func:`~ttg_lab.news.store.merge_news`), so a failed page stores nothing; the raw
answers are returned for the fetch pipeline's cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ttg_lab.errors import ValidationError
from ttg_lab.market.providers.alphavantage import AlphaVantage
from ttg_lab.market.providers.base import FetchRequest, RawResponse
from ttg_lab.news.importers import (
    ImportResult,
    alphavantage_feed,
    alphavantage_time_param,
    merge_results,
)
from ttg_lab.news.items import naive_utc
from ttg_lab.news.providers import alphavantage_ticker
from ttg_lab.news.store import NewsMerge, merge_news
from ttg_lab.store.database import Store

MAX_LIMIT = 1000
"""Items per page Alpha Vantage gives at most."""
MAX_PAGES = 25
"""Pages one fetch asks at most (a free key's whole day)."""

Sender = Callable[[FetchRequest], RawResponse]
"""Sends a request: the provider's own ``send``, or the pipeline's (rate-limited, cached)."""


@dataclass(frozen=True)
class NewsFetchReport:
    """What a news fetch did: the merge, the pages asked, their raw answers (for the
    cache), and notes (a page cap reached)."""

    merge: NewsMerge
    pages: int
    responses: tuple[RawResponse, ...]
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for a user."""
        m = self.merge
        text = (
            f"news: {m.added} added ({m.undated} undated: stored, never served), "
            f"{m.skipped} already known, {self.pages} page(s)"
        )
        return "; ".join((text, *self.notes))


def fetch_news(
    store: Store,
    provider: AlphaVantage,
    symbols: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    limit: int = MAX_LIMIT,
    max_pages: int = MAX_PAGES,
    send: Sender | None = None,
) -> NewsFetchReport:
    """Fetch the news about ``symbols`` (lab symbols: ``AAPL``, ``BTC-USDT``; none: all
    news) published from ``start`` to ``end`` (aware, or naive UTC) into ``store``.

    Raises the provider's FetchError (rate limit, quota, bad key, bad answer) with
    nothing stored; a known URL is skipped, so fetching again adds nothing.
    """
    first, last = naive_utc(start), naive_utc(end)
    if first >= last:
        raise ValidationError(f"news period starts {first} at or after it ends {last}")
    if max_pages < 1:
        raise ValidationError(f"max_pages must be at least 1, not {max_pages}")
    tickers = [alphavantage_ticker(s) for s in symbols if s.strip()]
    sender: Sender = send or provider.send
    time_from = alphavantage_time_param(first)
    time_to = alphavantage_time_param(last)
    results: list[ImportResult] = []
    responses: list[RawResponse] = []
    notes: list[str] = []
    while True:
        request = provider.news_request(tickers, time_from, time_to, limit)
        response = sender(request)
        responses.append(response)
        document = provider.document(response)
        page = alphavantage_feed(document)
        results.append(page)
        feed = document.get("feed")
        full = isinstance(feed, list) and len(feed) >= limit
        oldest = min((item.published_at for item in page.items), default=None)
        if not full or oldest is None or oldest <= first:
            break
        if len(responses) >= max_pages:
            notes.append(f"stopped after {max_pages} pages; older news was not fetched")
            break
        earlier = alphavantage_time_param(oldest)
        if earlier >= time_to:  # a full page within one minute: step past that minute
            earlier = alphavantage_time_param(oldest - timedelta(minutes=1))
        time_to = earlier
    found = merge_results(results)
    merged = merge_news(store, found.items, found.undated)
    return NewsFetchReport(merged, len(responses), tuple(responses), tuple(notes))


__all__ = ["NewsFetchReport", "fetch_news"]
