"""Keyword search over dated news that never looks past the simulated clock.

:class:`NewsIndex` is built once, in memory, from a list of :class:`News`. A search
first cuts the corpus at ``before_utc`` (items are kept in time order, so the cut is one
``bisect``) and only then ranks what is left with BM25, using document frequencies and
lengths of the visible items only: neither the results nor their order depend on items
published at or after the clock.
"""

from __future__ import annotations

import math
import re
import unicodedata
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from itertools import accumulate
from typing import Any

import numpy as np

from ttg_lab.errors import ValidationError
from ttg_lab.news.items import News, iso_utc, naive_utc, sort_news

K1 = 1.2
B = 0.75
SYMBOL_BOOST = 2.0
"""Added to the score of an item tagged with one of the requested symbols."""
TITLE_WEIGHT = 2
"""Title words count this many times (a title says what an item is about)."""
MAX_LIMIT = 50
SNIPPET_CHARS = 500
_EPOCH = datetime(1970, 1, 1)

_WORD = re.compile(r"[0-9a-z]+|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_STOPWORD_TEXT = (
    "a an and are as at be been but by for from has have how i if in into is it its of on "
    "or our so than that the their them then there these this to was we were what when "
    "which who will with you your"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_SYMBOL_PREFIXES = ("CRYPTO:", "FOREX:", "NASDAQ:", "NYSE:", "AMEX:")
_SYMBOL_SUFFIXES = ("-USDT", "-USD", "/USDT", "/USD")


def _stem(word: str) -> str:
    """A plural's singular, crudely (``stocks`` -> ``stock``); enough for news titles."""
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _word_tokens(word: str) -> tuple[str, ...]:
    if _CJK.match(word):
        return tuple(word[i : i + 2] for i in range(max(1, len(word) - 1)))
    return () if word in STOPWORDS else (_stem(word),)


_WORD_CACHE: dict[str, tuple[str, ...]] = {}
_WORD_CACHE_SIZE = 200_000


def tokens(text: str) -> list[str]:
    """Lower-case word tokens; CJK runs become character bigrams (no word boundaries)."""
    result: list[str] = []
    cache = _WORD_CACHE
    for word in _WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        known = cache.get(word)
        if known is None:
            if len(cache) >= _WORD_CACHE_SIZE:
                cache.clear()
            known = cache[word] = _word_tokens(word)
        result.extend(known)
    return result


def symbol_key(symbol: str) -> str:
    """A symbol in a form shared by sources: ``CRYPTO:BTC`` and ``BTC-USDT`` give ``BTC``."""
    key = symbol.strip().upper()
    for prefix in _SYMBOL_PREFIXES:
        key = key.removeprefix(prefix)
    for suffix in _SYMBOL_SUFFIXES:
        key = key.removesuffix(suffix)
    return key


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """``text`` on one line, cut to at most ``limit`` characters (ending in an ellipsis)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "\u2026"


@dataclass(frozen=True)
class NewsHit:
    """One search result as an agent sees it (``published_at`` is ISO UTC)."""

    title: str
    url: str
    published_at: str
    summary: str
    source: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hit_for(item: News, score: float) -> NewsHit:
    """The :class:`NewsHit` of ``item``: summary, or the start of the content, as snippet."""
    return NewsHit(
        title=item.title,
        url=item.url,
        published_at=iso_utc(item.published_at),
        summary=snippet(item.summary or item.content),
        source=item.source,
        score=round(score, 4),
    )


def _as_of(before_utc: datetime) -> datetime:
    if not isinstance(before_utc, datetime):
        raise ValidationError(f"before_utc must be a datetime, got {before_utc!r}")
    return naive_utc(before_utc)


def published_before(items: Iterable[News], before_utc: datetime) -> list[News]:
    """The items published strictly before ``before_utc``, in their given order.

    The same cut as :meth:`NewsIndex.search` makes (there by ``bisect`` on the sorted
    times), for items that come in an order of their own.
    """
    before = _as_of(before_utc)
    return [item for item in items if item.published_at < before]


class NewsIndex:
    """An in-memory BM25 index over dated news, searched as of a moment."""

    def __init__(self, items: Iterable[News]) -> None:
        self._items: list[News] = sort_news(list(items))
        self._times: list[datetime] = [item.published_at for item in self._items]
        self._recency: list[float] = [-(t - _EPOCH).total_seconds() for t in self._times]
        postings: dict[str, tuple[list[int], list[int]]] = {}
        by_symbol: dict[str, list[int]] = {}
        lengths: list[int] = []
        for doc, item in enumerate(self._items):
            keys = sorted({symbol_key(s) for s in item.symbols})
            words = tokens(item.title) * TITLE_WEIGHT
            for text in (item.summary, item.content, " ".join(keys), " ".join(item.topics)):
                words += tokens(text)
            for word, count in Counter(words).items():
                ids, counts = postings.setdefault(word, ([], []))
                ids.append(doc)
                counts.append(count)
            for key in keys:
                by_symbol.setdefault(key, []).append(doc)
            lengths.append(len(words))
        # Postings hold item positions in time order, so the visible part is a prefix.
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {
            word: (np.asarray(ids, dtype=np.int64), np.asarray(counts, dtype=np.float64))
            for word, (ids, counts) in postings.items()
        }
        self._by_symbol: dict[str, np.ndarray] = {
            key: np.asarray(ids, dtype=np.int64) for key, ids in by_symbol.items()
        }
        self._lengths = np.asarray(lengths, dtype=np.float64)
        self._length_sums: list[int] = [0, *accumulate(lengths)]

    def __len__(self) -> int:
        return len(self._items)

    @property
    def items(self) -> list[News]:
        """The indexed items, sorted by ``published_at`` then ``url`` (a copy)."""
        return list(self._items)

    def visible(self, before_utc: datetime) -> int:
        """How many items were published strictly before ``before_utc``."""
        return bisect_left(self._times, _as_of(before_utc))

    def search(
        self,
        query: str,
        before_utc: datetime,
        limit: int = 5,
        symbols: Sequence[str] | None = None,
    ) -> list[NewsHit]:
        """The ``limit`` best items for ``query`` published strictly before ``before_utc``.

        Items tagged with one of ``symbols`` get a boost (and are candidates even when no
        word matches). Ties go to the newer item, then the smaller URL. A blank query is
        refused; a query with only stop words finds nothing.
        """
        if not isinstance(query, str) or not query.strip():
            raise ValidationError("a search needs a non-empty query")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise ValidationError(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        cutoff = self.visible(before_utc)
        if cutoff == 0:
            return []
        scores = self._scores(sorted(set(tokens(query))), cutoff)
        for key in sorted({symbol_key(s) for s in symbols or () if s and s.strip()}):
            ids = self._by_symbol.get(key)
            if ids is not None:
                scores[ids[: np.searchsorted(ids, cutoff)]] += SYMBOL_BOOST
        # Rounded, so float noise never decides an order; ties: newer, then smaller URL.
        rounded = np.round(scores, 9)
        candidates = np.flatnonzero(rounded > 0.0)
        if len(candidates) > limit:
            kth = np.partition(rounded[candidates], -limit)[-limit]
            candidates = candidates[rounded[candidates] >= kth]
        best = sorted(
            candidates.tolist(),
            key=lambda d: (-rounded[d], self._recency[d], self._items[d].url),
        )[:limit]
        return [hit_for(self._items[doc], float(scores[doc])) for doc in best]

    def _scores(self, words: list[str], cutoff: int) -> np.ndarray:
        """BM25 of the first ``cutoff`` items (the visible ones) for ``words``.

        Document frequencies and the average length are those of the visible items.
        """
        scores = np.zeros(cutoff, dtype=np.float64)
        average = self._length_sums[cutoff] / cutoff or 1.0
        norm = K1 * (1.0 - B)
        slope = K1 * B / average
        for word in words:
            posting = self._postings.get(word)
            if posting is None:
                continue
            ids, counts = posting
            n = int(np.searchsorted(ids, cutoff))
            if n == 0:
                continue
            idf = math.log(1.0 + (cutoff - n + 0.5) / (n + 0.5))
            docs, tf = ids[:n], counts[:n]
            scores[docs] += idf * tf * (K1 + 1.0) / (tf + norm + slope * self._lengths[docs])
        return scores


__all__ = [
    "NewsHit",
    "NewsIndex",
    "hit_for",
    "published_before",
    "snippet",
    "symbol_key",
    "tokens",
]
