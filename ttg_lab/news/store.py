"""Load news into the store's ``news_items`` table, read it back, and keep its in-memory index.

A load is one transaction: items are upserted by URL (new URLs inserted, known ones
updated), and a ``datasets`` row (``market='news'``, ``interval='-'``) records the
fingerprint of what was loaded, so reloading the shipped corpus is a no-op and a failure
leaves the table as it was. Fetched news is merged instead (:func:`merge_news`): new URLs
added, known ones skipped, undated items stored without a time and never served. Only
SQLAlchemy Core/ORM constructs shared by SQLite and PostgreSQL are used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from ttg_lab.errors import ValidationError
from ttg_lab.market.shipped import DEFAULT_DATA_DIR
from ttg_lab.news.importers import UndatedNews, read_news_file
from ttg_lab.news.items import News, earliest_per_url, sort_news
from ttg_lab.news.search import NewsIndex
from ttg_lab.news.shipped import read_shipped_news, shipped_news_path
from ttg_lab.store.database import Store
from ttg_lab.store.schema import Dataset, NewsItem, utcnow

log = logging.getLogger(__name__)

NEWS_MARKET = "news"
NEWS_INTERVAL = "-"
SHIPPED_SOURCE_NAME = "shipped"
FINGERPRINT_VERSION = "ttg-lab news v1\n"
_CHUNK = 500
"""URLs per ``IN (...)`` list, well under every backend's bound-parameter limit."""


def dataset_name(source_name: str) -> str:
    """The ``datasets`` row name of a news load (``news:<source_name>``)."""
    return f"{NEWS_MARKET}:{source_name}"[:100]


def news_fingerprint(items: Iterable[News]) -> str:
    """SHA-256 (hex) of the items' JSON in canonical order, independent of input order."""
    digest = hashlib.sha256(FINGERPRINT_VERSION.encode())
    for item in sort_news(list(items)):
        line = json.dumps(item.to_json(), ensure_ascii=False, sort_keys=True)
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def _row(item: News) -> dict[str, Any]:
    return {
        "source": item.source,
        "url": item.url,
        "title": item.title,
        "summary": item.summary,
        "content": item.content,
        "published_at": item.published_at,
        "symbols": list(item.symbols),
        "topics": list(item.topics),
    }


def _chunks(values: Sequence[str], size: int = _CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _known_ids(session: Session, urls: Sequence[str]) -> dict[str, int]:
    known: dict[str, int] = {}
    for chunk in _chunks(urls):
        rows = session.execute(select(NewsItem.url, NewsItem.id).where(NewsItem.url.in_(chunk)))
        known.update({url: ident for url, ident in rows})
    return known


def _record_dataset(session: Session, source_name: str, items: list[News], digest: str) -> None:
    name = dataset_name(source_name)
    fields: dict[str, Any] = {
        "market": NEWS_MARKET,
        "interval": NEWS_INTERVAL,
        "source": source_name,
        "fingerprint": digest,
        "rows": len(items),
        "symbols": sorted({s for item in items for s in item.symbols}),
        "first_ts": items[0].published_at,
        "last_ts": items[-1].published_at,
        "loaded_at": utcnow(),
    }
    existing = session.scalars(select(Dataset).where(Dataset.name == name)).one_or_none()
    if existing is None:
        session.add(Dataset(name=name, **fields))
    else:
        for key, value in fields.items():
            setattr(existing, key, value)
    session.flush()


def load_news(store: Store, items: Iterable[News], source_name: str) -> int:
    """Upsert ``items`` by URL in one transaction; the number of items written.

    Known URLs are updated, new ones inserted, other stored items are left alone. The
    load is recorded as dataset ``news:<source_name>`` with its fingerprint. On any
    error nothing changes. Loading the same items again changes nothing but the record.
    """
    name = source_name.strip() if isinstance(source_name, str) else ""
    if not name:
        raise ValidationError("a news load needs a non-empty source name")
    unique = earliest_per_url(list(items))
    if not unique:
        return 0
    digest = news_fingerprint(unique)
    with store.session() as session:
        known = _known_ids(session, [item.url for item in unique])
        fresh = [_row(item) for item in unique if item.url not in known]
        changed = [{"id": known[item.url], **_row(item)} for item in unique if item.url in known]
        if fresh:
            session.execute(insert(NewsItem), fresh)
        if changed:
            session.execute(update(NewsItem), changed)
        _record_dataset(session, name, unique, digest)
    return len(unique)


@dataclass(frozen=True)
class NewsMerge:
    """What a merge of fetched news did: items added (``undated`` of them without a
    time, so stored but never served) and items skipped because their URL was known."""

    added: int
    undated: int
    skipped: int


def _undated_row(item: UndatedNews) -> dict[str, Any]:
    return {
        "source": item.source,
        "url": item.url,
        "title": item.title,
        "summary": item.summary,
        "content": "",
        "published_at": None,
        "symbols": list(item.symbols),
        "topics": list(item.topics),
    }


def merge_news(
    store: Store, items: Iterable[News], undated: Iterable[UndatedNews] = ()
) -> NewsMerge:
    """Add the items whose URL is not stored yet, in one transaction; a known URL is
    skipped (never changed). An undated item is stored with no time and so never served
    (:func:`read_news`); a URL given dated and undated is kept dated."""
    dated = earliest_per_url(list(items))
    dated_urls = {item.url for item in dated}
    timeless = list({u.url: u for u in undated if u.url not in dated_urls}.values())
    urls = [*dated_urls, *(u.url for u in timeless)]
    if not urls:
        return NewsMerge(0, 0, 0)
    with store.session() as session:
        known = _known_ids(session, urls)
        fresh = [_row(item) for item in dated if item.url not in known]
        fresh_undated = [_undated_row(u) for u in timeless if u.url not in known]
        if fresh or fresh_undated:
            session.execute(insert(NewsItem), fresh + fresh_undated)
    added = len(fresh) + len(fresh_undated)
    return NewsMerge(added, len(fresh_undated), len(urls) - added)


def _stored_urls(session: Session, urls: Sequence[str]) -> int:
    total = 0
    for chunk in _chunks(urls):
        total += (
            session.scalar(
                select(func.count()).select_from(NewsItem).where(NewsItem.url.in_(chunk))
            )
            or 0
        )
    return total


def load_shipped_news(store: Store, data_dir: Path = DEFAULT_DATA_DIR) -> int:
    """Load the shipped corpus unless it is already loaded; the number of items written.

    Skipped (0) when dataset ``news:shipped`` has the corpus's fingerprint and all of its
    URLs are still stored, so this is safe to call at every start.
    """
    items = read_shipped_news(data_dir)
    if not items:
        return 0
    digest = news_fingerprint(items)
    name = dataset_name(SHIPPED_SOURCE_NAME)
    with store.session() as session:
        existing = session.scalars(select(Dataset).where(Dataset.name == name)).one_or_none()
        current = (
            existing is not None
            and existing.fingerprint == digest
            and _stored_urls(session, [item.url for item in items]) == len(items)
        )
    if current:
        return 0
    log.info("loading %d news items from %s", len(items), shipped_news_path(data_dir))
    return load_news(store, items, SHIPPED_SOURCE_NAME)


def _news(row: NewsItem) -> News:
    assert row.published_at is not None  # undated items are never read to be served
    return News(
        source=row.source,
        url=row.url,
        title=row.title,
        summary=row.summary or "",
        content=row.content or "",
        published_at=row.published_at,
        symbols=tuple(str(s) for s in row.symbols or ()),
        topics=tuple(str(t) for t in row.topics or ()),
    )


def read_news(store: Store) -> list[News]:
    """Every stored dated item, sorted by ``published_at`` then ``url`` (an undated item
    is kept in the store but never served)."""
    with store.session() as session:
        rows = session.scalars(
            select(NewsItem)
            .where(NewsItem.published_at.is_not(None))
            .order_by(NewsItem.published_at, NewsItem.url)
        )
        return [_news(row) for row in rows]


_news_cache: dict[tuple[str, int, int], NewsIndex] = {}
_news_lock = threading.Lock()


def news_index(store: Store) -> NewsIndex:
    """The search tool's in-memory news index, built once per process and rebuilt when the
    corpus changes."""
    with store.session() as session:
        count, last = session.execute(select(func.count(NewsItem.id), func.max(NewsItem.id))).one()
    key = (store.url, int(count or 0), int(last or 0))
    with _news_lock:
        index = _news_cache.get(key)
        if index is None:
            index = NewsIndex(read_news(store))
            _news_cache[key] = index
        return index


def import_news_file(store: Store, path: str | Path, format: str = "auto") -> int:
    """Import a user's news file (``alphavantage``, ``aitrader-log`` or ``jsonl``).

    The format is detected from the name and first line unless given. Items are
    upserted by URL as dataset ``news:<file name>``; the number written is returned.
    Undated AI-Trader results are left out and logged; the other formats refuse a file
    with an undated item.
    """
    path = Path(path)
    result = read_news_file(path, format)
    if result.skipped_undated or result.skipped_malformed:
        log.info(
            "%s: left out %d undated and %d malformed results",
            path,
            result.skipped_undated,
            result.skipped_malformed,
        )
    return load_news(store, result.items, path.name)


__all__ = [
    "NewsMerge",
    "dataset_name",
    "import_news_file",
    "load_news",
    "load_shipped_news",
    "merge_news",
    "news_fingerprint",
    "news_index",
    "read_news",
]
