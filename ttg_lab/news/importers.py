"""Read news from Alpha Vantage, AI-Trader run logs and the lab's own JSONL format.

Every importer returns :class:`~ttg_lab.news.items.News` with ``published_at`` in naive
UTC. Where a source states a time without a time zone, the *latest* instant it can mean
is taken (see :func:`parse_publish_time`), so an item is never shown earlier than it can
have existed. Items without a usable time are never returned as News: the AI-Trader
importer counts them, the user formats (Alpha Vantage JSON, JSONL) refuse the file
instead, and an Alpha Vantage answer (:func:`alphavantage_feed`) gives them apart as
:class:`UndatedNews`, which the store keeps without a time and never serves.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from ttg_lab.errors import DataFileError, ValidationError
from ttg_lab.news.items import (
    News,
    earliest_per_url,
    make_news,
    naive_utc,
    sort_news,
    url_problem,
)
from ttg_lab.registry import Registry

ALPHAVANTAGE_TIMEZONE = ZoneInfo("America/New_York")
"""Zone assumed for Alpha Vantage's ``time_published`` (``20251014T211802``).

Alpha Vantage does not document the zone of NEWS_SENTIMENT times; its other US endpoints
use US/Eastern, and so do we. The choice is the safe one for a backtest: if the times
were really UTC, reading them as Eastern makes items appear 4-5 hours *later* than they
could, never earlier.
"""

LATEST_OFFSET = timedelta(hours=12)
"""A wall time without a zone is read as UTC-12, the latest instant it can denote."""

UNDATED_WORDS = frozenset({"", "unknown", "none", "null", "n/a", "na", "-"})


@dataclass(frozen=True)
class UndatedNews:
    """An item its source gives without a usable publish time: stored (so it is known and
    a later fetch skips it) with no time, and so never served. ``stated`` is what the
    source gave instead of a time (empty when nothing)."""

    source: str
    url: str
    title: str
    summary: str
    symbols: tuple[str, ...]
    topics: tuple[str, ...]
    stated: str


@dataclass(frozen=True)
class ImportResult:
    """Items read from a source, and how many results were left out and why
    (``undated`` holds the undated ones a source such as an API answer keeps)."""

    items: list[News]
    skipped_undated: int = 0
    skipped_malformed: int = 0
    undated: tuple[UndatedNews, ...] = ()


# --- publish times -------------------------------------------------------------------

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)
_US_STAMP = re.compile(
    r"^(?:[A-Za-z]{3,9},?\s+)?(\d{1,2})/(\d{1,2})/(\d{4})(?:\s*[-\u2013\u2014,]?\s*(\d{1,2}):(\d{2}))?$"
)
_ALPHAVANTAGE_STAMP = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})?$")
_MONTH_DAY_YEAR = ("%b %d, %Y", "%B %d, %Y", "%d %b %Y", "%d %B %Y")


def _offset(text: str) -> timedelta:
    if text.upper() == "Z":
        return timedelta(0)
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    return sign * timedelta(hours=hours, minutes=minutes)


def _parse_iso(text: str, naive: Literal["utc", "latest"]) -> datetime | None:
    match = _ISO.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        when = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
        )
    except ValueError:
        return None
    if zone is not None:
        return when - _offset(zone)
    if hour is None:  # a bare date: the end of that day in the latest zone (or UTC)
        when += timedelta(days=1)
    return when if naive == "utc" else when + LATEST_OFFSET


def parse_publish_time(text: str | None) -> datetime | None:
    """A web page's stated publish time as naive UTC; None when unknown or unreadable.

    Understands ISO 8601 (any fraction, ``Z``, ``+08:00``, ``+0000``), RFC 2822
    (``Wed, 29 Sep 2021 08:59:31 GMT``), ``Fri, 09/26/2025 — 15:30`` and
    ``May 31, 2025``. A time without a zone is read as UTC-12 and a bare date as the end
    of that day there: the latest instant the text can mean, so it is never early.
    """
    if text is None:
        return None
    value = " ".join(str(text).split())
    if value.lower() in UNDATED_WORDS:
        return None
    iso = _parse_iso(value, "latest")
    if iso is not None:
        return iso
    us = _US_STAMP.match(value)
    if us is not None:
        month, day, year, hour, minute = us.groups()
        try:
            when = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0))
        except ValueError:
            return None
        if hour is None:
            when += timedelta(days=1)
        return when + LATEST_OFFSET
    for pattern in _MONTH_DAY_YEAR:
        try:
            return datetime.strptime(value, pattern) + timedelta(days=1) + LATEST_OFFSET
        except ValueError:
            continue
    try:
        rfc = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if rfc.tzinfo is None:
        return rfc + LATEST_OFFSET
    return naive_utc(rfc)


def parse_utc_time(text: str) -> datetime | None:
    """An ISO time of the JSONL format as naive UTC (naive text is UTC); None if invalid.

    A bare date is refused (None): a user file must say when an item appeared.
    """
    value = text.strip()
    if len(value) <= 10:
        return None
    return _parse_iso(value, "utc")


def parse_alphavantage_time(text: str) -> datetime | None:
    """Alpha Vantage's ``20251014T211802`` (US/Eastern, see above) as naive UTC."""
    match = _ALPHAVANTAGE_STAMP.match(text.strip())
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
        local = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    # fold=1: in the repeated autumn hour take the later (EST) reading.
    aware = local.replace(tzinfo=ALPHAVANTAGE_TIMEZONE, fold=1)
    return aware.astimezone(UTC).replace(tzinfo=None)


def alphavantage_time_param(when_utc: datetime) -> str:
    """A naive UTC time as Alpha Vantage's ``time_from``/``time_to`` text (US/Eastern)."""
    local = naive_utc(when_utc).replace(tzinfo=UTC).astimezone(ALPHAVANTAGE_TIMEZONE)
    return local.strftime("%Y%m%dT%H%M")


# --- Alpha Vantage NEWS_SENTIMENT ----------------------------------------------------


class UnusableRecord(Exception):
    """A source record that cannot become a News item (undated or malformed)."""

    def __init__(self, reason: str, undated: bool) -> None:
        super().__init__(reason)
        self.undated = undated


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _names(entries: Any, key: str) -> list[str]:
    if not isinstance(entries, list):
        return []
    return [_text(e.get(key)) for e in entries if isinstance(e, dict) and _text(e.get(key))]


def _http_url(value: Any) -> str:
    """The record's URL if a news item may link to it (:func:`url_problem`)."""
    url = _text(value)
    problem = url_problem(url)
    if problem is not None:
        raise UnusableRecord(f"no usable http(s) URL: {problem}", undated=False)
    return url


_NO_TIME = datetime(1970, 1, 1)
"""Stands in for the missing time while an undated item's text is cleaned; never kept."""


def alphavantage_entry(entry: Any) -> News | UndatedNews:
    """One ``feed`` entry as News, or UndatedNews when its ``time_published`` is missing
    or unreadable; :class:`UnusableRecord` when it lacks a URL or a title."""
    if not isinstance(entry, dict):
        raise UnusableRecord("not an object", undated=False)
    url = _http_url(entry.get("url"))
    title = _text(entry.get("title"))
    if not title:
        raise UnusableRecord("no title", undated=False)
    stamp = _text(entry.get("time_published"))
    published = parse_alphavantage_time(stamp)
    item = make_news(
        source=_text(entry.get("source")) or _text(entry.get("source_domain")) or "Alpha Vantage",
        url=url,
        title=title,
        summary=_text(entry.get("summary")),
        published_at=_NO_TIME if published is None else published,
        symbols=_names(entry.get("ticker_sentiment"), "ticker"),
        topics=_names(entry.get("topics"), "topic"),
    )
    if published is not None:
        return item
    fields = (item.source, item.url, item.title, item.summary, item.symbols, item.topics)
    return UndatedNews(*fields, stated=stamp[:40])


def alphavantage_item(entry: Any) -> News:
    """One ``feed`` entry as News; :class:`UnusableRecord` when it lacks a URL, title or time."""
    found = alphavantage_entry(entry)
    if isinstance(found, UndatedNews):
        raise UnusableRecord(f"no usable time_published ({found.stated!r})", undated=True)
    return found


def alphavantage_feed(document: Any) -> ImportResult:
    """All usable items of a NEWS_SENTIMENT answer: the dated ones as ``items``, the
    undated ones in ``undated`` (and counted); malformed entries are counted."""
    feed = document.get("feed") if isinstance(document, dict) else None
    if not isinstance(feed, list):
        return ImportResult([])
    items: list[News] = []
    undated: list[UndatedNews] = []
    malformed = 0
    for entry in feed:
        try:
            found = alphavantage_entry(entry)
        except UnusableRecord:
            malformed += 1
            continue
        if isinstance(found, UndatedNews):
            undated.append(found)
        else:
            items.append(found)
    return ImportResult(earliest_per_url(items), len(undated), malformed, tuple(undated))


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFileError(path, "file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise DataFileError(path, f"not valid JSON: {exc}", line) from None


def read_alphavantage_news(path: str | Path) -> list[News]:
    """The items of an Alpha Vantage NEWS_SENTIMENT JSON file, sorted by time then URL.

    ``ticker_sentiment`` tickers become ``symbols`` (as given: ``COIN``, ``CRYPTO:BTC``)
    and ``topics`` the topic names. An entry without URL, title or readable
    ``time_published`` refuses the file (a user's file never loses rows silently).
    """
    path = Path(path)
    document = _load_json(path)
    feed = document.get("feed") if isinstance(document, dict) else None
    if not isinstance(feed, list):
        raise DataFileError(path, "no 'feed' list: not an Alpha Vantage NEWS_SENTIMENT answer")
    items = []
    for number, entry in enumerate(feed):
        try:
            items.append(alphavantage_item(entry))
        except UnusableRecord as exc:
            raise DataFileError(path, f"feed item {number}: {exc}") from None
    return earliest_per_url(items)


# --- AI-Trader run logs --------------------------------------------------------------

_SEARCH_BLOCK_START = re.compile(r"^URL: ", re.MULTILINE)
_SEARCH_BLOCK = re.compile(
    r"\AURL: (?P<url>[^\n]*)\nTitle: (?P<title>[^\n]*)\nDescription: (?P<description>.*?)"
    r"\nPublish Time: (?P<time>[^\n]*)\nContent: (?P<content>.*)\Z",
    re.DOTALL,
)
_NEWS_BLOCK = re.compile(r"^Title: [^\n]*\nSummary: ", re.MULTILINE)
AITRADER_CONTENT_CHARS = 1000
"""AI-Trader's search tool printed ``content[:1000] + "..."`` per result."""

_MD_IMAGE = re.compile(r"!\[[^\]\n]*\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
_MD_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
_RULE = re.compile(r"^\s*[=\-*_]{3,}\s*$", re.MULTILINE)
_BLANKS = re.compile(r"\n\s*\n(\s*\n)+")
_TICKER_IN_TITLE = re.compile(
    r"\(\s*(?:(?:NASDAQ|NYSE|NYSEARCA|NYSEAMERICAN|AMEX|OTC)\s*:\s*)?"
    r"([A-Z]{1,5}(?:\.[A-Z]{1,2})?)\s*\)"
)


def compact_text(text: str) -> str:
    """Page text without Markdown link targets, images, rules and runs of blank lines."""
    text = _MD_IMAGE.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _RULE.sub("", text)
    text = "\n".join(line.rstrip() for line in text.splitlines())
    return _BLANKS.sub("\n\n", text).strip()


def _tool_content(body: str) -> str:
    """The page text of one search result, without AI-Trader's ``...`` and what follows.

    AI-Trader printed at most 1000 characters and then ``...``; text after that marker
    belongs to other tool output in the same message.
    """
    limit = min(len(body), AITRADER_CONTENT_CHARS)
    for end in range(limit, -1, -1):
        if body.startswith("...", end) and (len(body) == end + 3 or body[end + 3] == "\n"):
            return body[:end]
    return body


def host_of(url: str) -> str:
    """The site of ``url`` without ``www.`` (``cnbc.com``): the source of a web result."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:  # e.g. a malformed IPv6 literal
        return ""
    return host.removeprefix("www.")


def _message_texts(new_messages: Any) -> Iterator[str]:
    messages = new_messages if isinstance(new_messages, list) else [new_messages]
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            parts = [p.get("text") for p in content if isinstance(p, dict)]
            yield "\n".join(p for p in parts if isinstance(p, str))


@dataclass
class _Tally:
    undated: int = 0
    malformed: int = 0


def _search_results(text: str, tally: _Tally) -> Iterator[News]:
    starts = [m.start() for m in _SEARCH_BLOCK_START.finditer(text)]
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        match = _SEARCH_BLOCK.match(text[start:end].rstrip("\n"))
        if match is None:
            tally.malformed += 1
            continue
        try:
            url = _http_url(match["url"])
        except UnusableRecord:
            tally.malformed += 1
            continue
        published = parse_publish_time(match["time"])
        if published is None:
            tally.undated += 1
            continue
        title = match["title"].strip()
        description = " ".join(match["description"].split())
        yield make_news(
            source=host_of(url),
            url=url,
            title=title or description[:200] or url,
            summary=description,
            content=compact_text(_tool_content(match["content"])),
            published_at=published,
            symbols=_TICKER_IN_TITLE.findall(title),
        )
    tally.undated += len(_NEWS_BLOCK.findall(text))  # Title/Summary news: never dated


def read_aitrader_search_results(path: str | Path) -> ImportResult:
    """The dated web search results an AI-Trader run log (``log.jsonl``) shows.

    Each line is ``{"signature", "new_messages"}``; results are blocks
    ``URL / Title / Description / Publish Time / Content`` in message text. Results with
    an unknown or unreadable publish time, and AI-Trader's ``Title / Summary`` news
    blocks (which carry no time at all), are counted as undated and left out; blocks
    that start like a result but lack its fields are counted as malformed. Content is
    AI-Trader's first 1000 characters, compacted. A URL seen twice keeps its earliest
    time. A line that is not a JSON object refuses the file, naming the line.
    """
    path = Path(path)
    tally = _Tally()
    items: list[News] = []
    for number, record in _json_lines(path):
        if not isinstance(record, dict) or "new_messages" not in record:
            raise DataFileError(path, "not an AI-Trader log record (no 'new_messages')", number)
        for text in _message_texts(record["new_messages"]):
            items.extend(_search_results(text, tally))
    return ImportResult(earliest_per_url(items), tally.undated, tally.malformed)


def merge_results(results: Iterable[ImportResult]) -> ImportResult:
    """Several results as one: counts added, one item per URL (the earliest)."""
    items: list[News] = []
    kept: list[UndatedNews] = []
    undated = malformed = 0
    for result in results:
        items.extend(result.items)
        kept.extend(result.undated)
        undated += result.skipped_undated
        malformed += result.skipped_malformed
    return ImportResult(earliest_per_url(items), undated, malformed, tuple(kept))


# --- the lab's JSONL format ----------------------------------------------------------


def _open_text(path: Path) -> Iterator[str]:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                yield from handle
        else:
            with path.open(encoding="utf-8") as handle:
                yield from handle
    except FileNotFoundError:
        raise DataFileError(path, "file not found") from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataFileError(path, f"unreadable file: {exc}") from None


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line; bad JSON names file and line."""
    for number, line in enumerate(_open_text(path), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFileError(path, f"not valid JSON: {exc.msg}", number) from None


def _string_list(value: Any, field: str, path: Path, number: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataFileError(path, f"'{field}' must be a list of strings", number)
    return list(value)


def news_from_json(record: Any, path: Path, number: int) -> News:
    """One JSONL record as News; anything missing or invalid names the file and line."""
    if not isinstance(record, dict):
        raise DataFileError(path, "a line must be a JSON object", number)
    for field in ("url", "title", "published_at"):
        if not isinstance(record.get(field), str) or not record[field].strip():
            raise DataFileError(path, f"missing or empty '{field}'", number)
    problem = url_problem(record["url"].strip())
    if problem is not None:
        raise DataFileError(path, problem, number)
    for field in ("source", "summary", "content"):
        if record.get(field) is not None and not isinstance(record[field], str):
            raise DataFileError(path, f"'{field}' must be a string", number)
    published = parse_utc_time(record["published_at"])
    if published is None:
        raise DataFileError(
            path,
            f"published_at {record['published_at']!r} is not an ISO date and time "
            "(e.g. 2025-10-14T21:18:02Z)",
            number,
        )
    try:
        return make_news(
            source=record.get("source") or host_of(record["url"]),
            url=record["url"],
            title=record["title"],
            summary=record.get("summary") or "",
            content=record.get("content") or "",
            published_at=published,
            symbols=_string_list(record.get("symbols"), "symbols", path, number),
            topics=_string_list(record.get("topics"), "topics", path, number),
        )
    except ValidationError as exc:
        raise DataFileError(path, str(exc), number) from None


def read_news_jsonl(path: str | Path) -> list[News]:
    """The items of a JSONL news file (``.gz`` too), one JSON object per line.

    Fields: ``url``, ``title``, ``published_at`` (ISO; naive means UTC) are required;
    ``source``, ``summary``, ``content``, ``symbols``, ``topics`` are optional. Any bad
    line refuses the whole file, naming the line. A URL given twice keeps its earliest
    time.
    """
    path = Path(path)
    items = [news_from_json(record, path, number) for number, record in _json_lines(path)]
    return earliest_per_url(items)


def write_news_jsonl(items: Iterable[News], path: str | Path) -> None:
    """Write items as JSONL (gzip when the name ends in ``.gz``), sorted, byte-stable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(
        json.dumps(item.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n"
        for item in sort_news(list(items))
    ).encode("utf-8")
    if path.name.endswith(".gz"):
        with (
            path.open("wb") as raw,
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=9, mtime=0) as handle,
        ):
            handle.write(lines)
    else:
        path.write_bytes(lines)


# --- format detection ----------------------------------------------------------------


def detect_format(path: Path) -> str:
    """The news format of ``path``: ``alphavantage``, ``aitrader-log`` or ``jsonl``."""
    name = path.name.lower()
    if name.endswith(".json"):
        return "alphavantage"
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".gz")):
        for _number, record in _json_lines(path):
            return (
                "aitrader-log" if isinstance(record, dict) and "new_messages" in record else "jsonl"
            )
        return "jsonl"
    raise ValidationError(
        f"cannot tell the news format of {path.name!r}; "
        f"give format= one of {', '.join(FORMATS.names())}"
    )


NewsReader = Callable[[Path], ImportResult]

FORMATS: Registry[NewsReader] = Registry("news format")
"""News formats :func:`read_news_file` knows, by name (``format="auto"`` picks one)."""
FORMATS.register("alphavantage", lambda path: ImportResult(read_alphavantage_news(path)))
FORMATS.register("aitrader-log", read_aitrader_search_results)
FORMATS.register("jsonl", lambda path: ImportResult(read_news_jsonl(path)))


def read_news_file(path: str | Path, format: str = "auto") -> ImportResult:
    """Read a news file of ``format`` (or detected from its name and first line)."""
    path = Path(path)
    chosen = detect_format(path) if format == "auto" else format
    return FORMATS.get(chosen)(path)


__all__ = [
    "ALPHAVANTAGE_TIMEZONE",
    "ImportResult",
    "UndatedNews",
    "alphavantage_entry",
    "alphavantage_feed",
    "alphavantage_time_param",
    "merge_results",
    "parse_alphavantage_time",
    "parse_publish_time",
    "read_aitrader_search_results",
    "read_alphavantage_news",
    "read_news_file",
    "read_news_jsonl",
    "sort_news",
    "write_news_jsonl",
]
