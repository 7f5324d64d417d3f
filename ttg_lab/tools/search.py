"""Search tool: dated news published before the simulated decision time.

The moment is the step's decision time in UTC (for daily bars the session open), and
only items published strictly before it are ever returned, from the run's local corpus
(``ctx.news``) and from online providers whose API key is set in the environment.
"""

from __future__ import annotations

from typing import Any

from ttg_lab.engine.context import RunContext
from ttg_lab.errors import ValidationError
from ttg_lab.news.items import iso_utc
from ttg_lab.news.providers import configured_providers, search_online
from ttg_lab.news.search import NewsHit, symbol_key, tokens
from ttg_lab.tools.answers import MAX_QUERY_CHARS

RESULTS = 5
"""Hits returned from the corpus, and at most as many again from online providers."""


def _symbols_in(query: str, ctx: RunContext) -> list[str]:
    """The run's tickers named in the query (``NVDA``, ``BTC`` for ``BTC-USDT``)."""
    words = {w.upper() for w in tokens(query)}
    return sorted(t for t in ctx.tickers if symbol_key(t) in words)


def get_information(ctx: RunContext, query: str) -> dict[str, Any]:
    """Search news and web results published before now (the simulated time).

    Give keywords (company, ticker, topic). Returns up to 5 items, best first, each with
    title, url, published_at (UTC), summary, source and score; nothing published at or
    after the current simulated time is ever returned.
    """
    if not isinstance(query, str) or not query.strip():
        raise ValidationError("get_information needs a non-empty query")
    query = query.strip()
    if len(query) > MAX_QUERY_CHARS:
        raise ValidationError(
            f"query is too long ({len(query):,} characters; at most {MAX_QUERY_CHARS:,})"
        )
    as_of = ctx.market.to_utc(ctx.market.decision_time(ctx.clock, ctx.index.interval))
    symbols = _symbols_in(query, ctx)
    notes: list[str] = []
    hits: list[NewsHit] = []
    if ctx.news is None:
        notes.append("no news corpus is loaded")
    else:
        hits = ctx.news.search(query, as_of, RESULTS, symbols)
    providers = configured_providers()
    if providers:
        online, online_notes = search_online(providers, query, as_of, RESULTS, symbols)
        seen = {hit.url for hit in hits}
        hits += [hit for hit in online if hit.url not in seen]
        notes += online_notes
    answer: dict[str, Any] = {
        "query": query,
        "as_of": iso_utc(as_of),
        "results": [hit.to_dict() for hit in hits],
    }
    if notes:
        answer["note"] = "; ".join(notes)
    return answer
