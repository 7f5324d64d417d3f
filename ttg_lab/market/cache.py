"""Prices in memory: one index per market, interval and data version, shared by the
process.

A run records the data version it read (:func:`data_fingerprint`: one hash over the
fingerprints the loader keeps for a market's interval), and every reader of that
version (the run, its resume, a replay, charts, an MCP run view) gets the same in-memory
:class:`~ttg_lab.market.asof.PriceIndex`, built once.
"""

from __future__ import annotations

import hashlib
import threading

from sqlalchemy import select

from ttg_lab.errors import NotFoundError
from ttg_lab.market.asof import PriceIndex
from ttg_lab.market.loader import read_price_frame
from ttg_lab.store.database import Store
from ttg_lab.store.schema import Dataset

_index_cache: dict[tuple[str, str, str, str], PriceIndex] = {}
_index_lock = threading.Lock()


def data_fingerprint(store: Store, market: str, interval: str) -> str:
    """One hash over the fingerprints of the datasets a run reads."""
    with store.session() as session:
        prints = sorted(
            session.scalars(
                select(Dataset.fingerprint).where(
                    Dataset.market == market, Dataset.interval == interval
                )
            )
        )
    if not prints:
        raise NotFoundError(
            f"no {interval} price data loaded for the {market} market; run `ttg-lab init`"
        )
    return hashlib.sha256("|".join(prints).encode()).hexdigest()


def price_index(store: Store, market: str, interval: str, fingerprint: str) -> PriceIndex:
    """The in-memory price index, built once per process and data version."""
    key = (store.url, market, interval, fingerprint)
    with _index_lock:
        index = _index_cache.get(key)
        if index is None:
            index = PriceIndex(read_price_frame(store, market, interval), market, interval)
            _index_cache[key] = index
        return index
