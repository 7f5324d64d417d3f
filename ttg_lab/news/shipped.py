"""The news corpus that ships with the repository, and the one-off build that made it.

``data/news/news.jsonl.gz`` holds dated items (gzipped JSONL, sorted by
``published_at`` then ``url``): Alpha Vantage NEWS_SENTIMENT items from AI-Trader's
news sample, and the dated web search results AI-Trader's agents were shown in their
run logs. :func:`build_news` made it; the product only reads the file
(:func:`read_shipped_news`).

Maintainers rebuild with ``python -m ttg_lab.news.shipped SOURCE_DIR OUT_FILE``, where
``SOURCE_DIR`` is AI-Trader's data folder (``news_sample/``, ``runs/``).
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

from ttg_lab.errors import DataFileError
from ttg_lab.market.shipped import DEFAULT_DATA_DIR
from ttg_lab.news.importers import (
    merge_results,
    read_aitrader_search_results,
    read_alphavantage_news,
    read_news_jsonl,
    write_news_jsonl,
)
from ttg_lab.news.items import News, earliest_per_url

log = logging.getLogger(__name__)

SHIPPED_SUBDIR = "news"
SHIPPED_FILENAME = "news.jsonl.gz"

LIVE_PAGE = re.compile(r"live-updates|live-coverage|live-blog|\(live coverage\)|live updates", re.I)
"""Rolling live pages: their text is rewritten all day, so their time dates none of it."""

UNRELIABLE_DATES: dict[str, str] = {
    "https://www.home.saxo/content/articles/macro/market-quick-take---1-october-2025-01102025": (
        "stated 2024-12-11 (a template date) for a report on 1 October 2025"
    ),
    "https://www.reuters.com/business/fed-in-fog-it-heads-toward-another-rate-cut-2025-10-29/": (
        "stated 2025-10-29 05:02 UTC, but the title reports the Fed decision of 18:00 UTC"
    ),
}
"""Items left out because their stated time is earlier than what they say."""

_URL_DATE = re.compile(r"(?<!\d)(20\d{2})([/-]?)(0[1-9]|1[0-2])\2([0-2]\d|3[01])(?!\d)")
_EARLIEST_OFFSET = timedelta(hours=14)


def url_date_floor(url: str) -> datetime | None:
    """The earliest UTC instant the latest date written in ``url`` allows (None: no date).

    A page filed under day D cannot predate D 00:00 in the easternmost zone (UTC+14).
    """
    floors = []
    for year, _sep, month, day in _URL_DATE.findall(url):
        try:
            floors.append(datetime(int(year), int(month), int(day)) - _EARLIEST_OFFSET)
        except ValueError:
            continue
    return max(floors, default=None)


def unreliable_reason(item: News) -> str | None:
    """Why ``item``'s time cannot be trusted for a backtest, or None when it can."""
    if item.url in UNRELIABLE_DATES:
        return UNRELIABLE_DATES[item.url]
    if LIVE_PAGE.search(item.url) or LIVE_PAGE.search(item.title):
        return "a rolling live page"
    floor = url_date_floor(item.url)
    if floor is not None and item.published_at < floor:
        return f"stated {item.published_at:%Y-%m-%d %H:%M} UTC, before the date in its URL"
    return None


def shipped_news_path(data_dir: Path = DEFAULT_DATA_DIR) -> Path:
    """The shipped corpus: ``data_dir/news/news.jsonl.gz`` (or ``data_dir/news.jsonl.gz``)."""
    nested = Path(data_dir) / SHIPPED_SUBDIR / SHIPPED_FILENAME
    direct = Path(data_dir) / SHIPPED_FILENAME
    return direct if direct.is_file() and not nested.is_file() else nested


def read_shipped_news(data_dir: Path = DEFAULT_DATA_DIR) -> list[News]:
    """The shipped items, sorted by ``published_at`` then ``url``."""
    path = shipped_news_path(data_dir)
    if not path.is_file():
        raise DataFileError(path, "the shipped news corpus is missing")
    return read_news_jsonl(path)


def build_news(source_dir: Path, out_path: Path) -> dict[str, int]:
    """Build the shipped corpus from AI-Trader's data folder; figures of the build.

    Reads ``source_dir/news_sample/*.json`` (Alpha Vantage) and every
    ``source_dir/runs/*/*/log/*/log.jsonl``; drops undated results and items whose time
    cannot be trusted (:func:`unreliable_reason`, each logged at INFO level), keeps one
    item per URL (the earliest) and writes ``out_path`` (gzipped JSONL).
    """
    source_dir, out_path = Path(source_dir), Path(out_path)
    samples = sorted((source_dir / "news_sample").glob("*.json"))
    logs = sorted((source_dir / "runs").glob("*/*/log/*/log.jsonl"))
    if not samples and not logs:
        raise DataFileError(source_dir, "no news_sample/*.json and no runs/*/*/log/*/log.jsonl")
    alphavantage = [item for path in samples for item in read_alphavantage_news(path)]
    searched = merge_results(read_aitrader_search_results(path) for path in logs)
    merged = earliest_per_url(alphavantage + searched.items)
    kept: list[News] = []
    for item in merged:
        reason = unreliable_reason(item)
        if reason is None:
            kept.append(item)
        else:
            log.info("left out %s: %s", item.url, reason)
    write_news_jsonl(kept, out_path)
    return {
        "items": len(kept),
        "alphavantage_items": len(alphavantage),
        "search_result_items": len(searched.items),
        "log_files": len(logs),
        "skipped_undated": searched.skipped_undated,
        "skipped_malformed": searched.skipped_malformed,
        "left_out_unreliable": len(merged) - len(kept),
        "duplicate_urls": len(alphavantage) + len(searched.items) - len(merged),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m ttg_lab.news.shipped SOURCE_DIR OUT_FILE``: rebuild the shipped corpus."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m ttg_lab.news.shipped SOURCE_DIR OUT_FILE", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args[1])
    figures = build_news(Path(args[0]), out)
    for name, count in figures.items():
        print(f"{name}: {count}")
    items = read_news_jsonl(out)
    if items:
        print(
            f"published: {items[0].published_at:%Y-%m-%d %H:%M} .. "
            f"{items[-1].published_at:%Y-%m-%d %H:%M} UTC"
        )
    print(f"size: {out.stat().st_size / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
