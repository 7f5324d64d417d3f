"""The news item every importer produces and the search index serves.

``published_at`` is naive UTC and is the moment from which an item may be shown: the
search never returns an item at or after the simulated clock. A :class:`News` always has a
publish time; an item fetched without one is kept in the store undated and never becomes
a ``News`` (see :mod:`ttg_lab.news.store`), so it is never served.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from ttg_lab.errors import ValidationError

MAX_CONTENT_CHARS = 4000
"""Content is cut to this many characters: enough for a snippet and ranking, and it keeps
the shipped corpus and the store small."""
MAX_SOURCE_CHARS = 64
"""Width of ``news_items.source``."""
MAX_URL_CHARS = 2000
"""Width of ``news_items.url``."""


WEB_SCHEMES = ("http", "https")
"""The only URLs a news item may link to: a ``javascript:``, ``data:`` or ``file:`` link
shown in a panel or a report is an attack, not a source."""
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f]")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a news item's link (None when it can): it must be an
    absolute http(s) URL with a host, without spaces or control characters, at most
    :data:`MAX_URL_CHARS` long."""
    shown = url if len(url) <= 80 else url[:80] + "..."
    if not url.strip():
        return "a news item needs a URL"
    if len(url) > MAX_URL_CHARS:
        return f"URL longer than {MAX_URL_CHARS} characters: {shown!r}"
    if _BAD_URL_CHARS.search(url):
        return f"URL {shown!r} contains spaces or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return f"URL {shown!r} is malformed"
    if parts.scheme.lower() not in WEB_SCHEMES or not host:
        return f"URL {shown!r} is not an http(s) link with a host"
    return None


def _clean(text: str) -> str:
    """``text`` trimmed, without NUL characters (which no store keeps: PostgreSQL refuses
    them) and other control characters but tabs and line breaks."""
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text).strip()


def naive_utc(when: datetime) -> datetime:
    """``when`` as naive UTC: aware times are converted, naive ones are taken as UTC."""
    if when.tzinfo is None:
        return when
    return when.astimezone(UTC).replace(tzinfo=None)


def ceil_second(when: datetime) -> datetime:
    """``when`` rounded up to a whole second (never earlier: a fraction only delays it)."""
    if when.microsecond == 0:
        return when
    return when.replace(microsecond=0) + timedelta(seconds=1)


def iso_utc(when: datetime) -> str:
    """A naive UTC time as ISO text with a ``Z`` (``2025-10-14T21:18:02Z``)."""
    return naive_utc(when).isoformat(timespec="seconds") + "Z"


@dataclass(frozen=True)
class News:
    """One dated news item: who published it, where, when (naive UTC) and what it says."""

    source: str
    url: str
    title: str
    summary: str
    content: str
    published_at: datetime
    symbols: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.published_at, datetime):
            raise ValidationError(f"published_at of {self.url!r} is not a datetime")
        if self.published_at.tzinfo is not None:
            raise ValidationError(f"published_at of {self.url!r} must be naive UTC")
        problem = url_problem(self.url)
        if problem is not None:
            raise ValidationError(problem)
        for name in ("source", "title", "summary", "content", *("symbols", "topics")):
            value = getattr(self, name)
            if any("\x00" in text for text in (value if isinstance(value, tuple) else (value,))):
                raise ValidationError(f"{name} of {self.url!r} contains a NUL character")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the shipped/user JSONL format; ``published_at`` ISO UTC)."""
        return {
            "source": self.source,
            "url": self.url,
            "title": self.title,
            "summary": self.summary,
            "content": self.content,
            "published_at": iso_utc(self.published_at),
            "symbols": list(self.symbols),
            "topics": list(self.topics),
        }


def make_news(
    *,
    source: str,
    url: str,
    title: str,
    published_at: datetime,
    summary: str = "",
    content: str = "",
    symbols: tuple[str, ...] | list[str] = (),
    topics: tuple[str, ...] | list[str] = (),
) -> News:
    """A :class:`News` with text trimmed (control characters dropped), content cut, the
    time rounded up to a second and tags deduplicated (order kept)."""
    return News(
        source=_clean(source)[:MAX_SOURCE_CHARS],
        url=url.strip(),
        title=_clean(title),
        summary=_clean(summary),
        content=_clean(content)[:MAX_CONTENT_CHARS],
        published_at=ceil_second(naive_utc(published_at)),
        symbols=tuple(dict.fromkeys(_clean(s) for s in symbols if s and _clean(s))),
        topics=tuple(dict.fromkeys(_clean(t) for t in topics if t and _clean(t))),
    )


def earliest_per_url(items: list[News]) -> list[News]:
    """One item per URL, the earliest published (ties: the first seen), sorted by time, url.

    The same page seen twice keeps its earliest time, so it is never shown later than
    its source says it existed.
    """
    best: dict[str, News] = {}
    for item in items:
        kept = best.get(item.url)
        if kept is None or item.published_at < kept.published_at:
            best[item.url] = item
    return sort_news(list(best.values()))


def sort_news(items: list[News]) -> list[News]:
    """Items sorted by ``published_at`` then ``url`` (the canonical, deterministic order)."""
    return sorted(items, key=lambda n: (n.published_at, n.url))
