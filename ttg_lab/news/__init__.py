"""Dated news for the agents' search tool, served strictly before the simulated clock.

- :mod:`ttg_lab.news.items`: the :class:`News` item (``published_at`` naive UTC).
- :mod:`ttg_lab.news.importers`: Alpha Vantage JSON, AI-Trader run logs, JSONL.
- :mod:`ttg_lab.news.shipped`: the corpus shipped in ``data/news/`` and its build.
- :mod:`ttg_lab.news.store`: load into / read from the store's ``news_items``; the cached index.
- :mod:`ttg_lab.news.search`: :class:`NewsIndex`, the as-of keyword search.
- :mod:`ttg_lab.news.providers`: optional online sources (Alpha Vantage, Jina).

Only the light modules are imported here, so ``ttg_lab.tools`` can use the index
without pulling in the store.
"""

from ttg_lab.news.items import News
from ttg_lab.news.search import NewsHit, NewsIndex

__all__ = ["News", "NewsHit", "NewsIndex"]
