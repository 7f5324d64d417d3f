"""The news item every importer produces and the search index serves.

``published_at`` is naive UTC and is the moment from which an item may be shown: the
search never returns an item at or after the simulated clock. Items without a publish
time are never created (importers count and drop them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ttg_lab.errors import ValidationError

MAX_CONTENT_CHARS = 4000
"""Content is cut to this many characters: enough for a snippet and ranking, and it keeps
the shipped corpus and the store small."""
MAX_SOURCE_CHARS = 64
"""Width of ``news_items.source``."""
MAX_URL_CHARS = 2000
"""Width of ``news_items.url``."""


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
        if not self.url.strip():
            raise ValidationError("a news item needs a URL")
        if len(self.url) > MAX_URL_CHARS:
            raise ValidationError(f"URL longer than {MAX_URL_CHARS} characters: {self.url[:80]}...")

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
    """A :class:`News` with text trimmed, content cut, the time rounded up to a second and
    tags deduplicated (order kept)."""
    return News(
        source=source.strip()[:MAX_SOURCE_CHARS],
        url=url.strip(),
        title=title.strip(),
        summary=summary.strip(),
        content=content.strip()[:MAX_CONTENT_CHARS],
        published_at=ceil_second(naive_utc(published_at)),
        symbols=tuple(dict.fromkeys(s.strip() for s in symbols if s and s.strip())),
        topics=tuple(dict.fromkeys(t.strip() for t in topics if t and t.strip())),
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
