"""What a data provider is: the contract every provider meets and their registry.

A provider knows one source's protocol and nothing of the store: it plans the requests
that cover a symbol's period (:meth:`DataProvider.requests`), sends one
(:meth:`DataProvider.send`, adding its key from the environment) and turns an answer into
bars in the store's convention (:meth:`DataProvider.parse`: bar starts, exchange-local
naive times, the market's currency) or a :class:`~ttg_lab.errors.FetchError` naming the
provider, the symbol and the reason. Requests are planned up front so the fetch pipeline
(:mod:`ttg_lab.market.fetch`) can cache their answers, respect the provider's declared
:class:`RateLimit`\\ s and resume a killed fetch where it stopped.

Every provider takes a ``base_url`` so it can point at a mirror, a proxy or a test server.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol
from urllib.parse import urlsplit

from ttg_lab.errors import ConfigError
from ttg_lab.market.bars import ImportedBars
from ttg_lab.market.markets import Market
from ttg_lab.ratelimit import RateLimit as RateLimit  # part of the providers contract
from ttg_lab.registry import Registry


def checked_base_url(given: str, what: str) -> str:
    """``given`` without a trailing ``/`` if it is an http(s) URL with a host and no
    query; a ConfigError naming ``what`` and the value otherwise."""
    text = given.strip().rstrip("/")
    try:
        parts = urlsplit(text)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.query
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{what} {given!r} is not an http(s) URL with a host")
    return text


@dataclass(frozen=True)
class FetchRequest:
    """One request a provider will send: its URL and query without any secret, and the
    days whose bars its answer holds (``first``..``last``, exchange-local)."""

    provider: str
    symbol: str
    interval: str
    url: str
    params: tuple[tuple[str, str], ...]
    first: date
    last: date

    @property
    def key(self) -> str:
        """What identifies the request (and its cached answer): SHA-256 of it as JSON."""
        text = json.dumps([self.provider, self.url, list(self.params)], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def shown(self) -> str:
        """The request as text (no key is ever in it)."""
        query = "&".join(f"{k}={v}" for k, v in self.params)
        return f"{self.url}?{query}" if query else self.url


@dataclass(frozen=True)
class RawResponse:
    """What came back for a request, kept verbatim in the cache under ``data/``."""

    request: FetchRequest
    status: int
    body: bytes
    content_type: str
    fetched_at: datetime
    """Aware UTC."""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True)
class Pending:
    """The open of a bar that has started but not ended, as the provider showed it: a
    forward run may decide on it; the store only takes complete bars."""

    symbol: str
    ts: datetime
    open: float


@dataclass(frozen=True)
class Parsed:
    """A response's bars (every bar the answer holds, complete or not) and its source."""

    bars: ImportedBars
    notes: tuple[str, ...] = field(default_factory=tuple)


class DataProvider(Protocol):
    """A source of bars for one or more markets (see the module)."""

    name: str
    markets: tuple[str, ...]
    """Market codes it serves."""
    intervals: tuple[str, ...]
    """Bar intervals it serves (of :data:`~ttg_lab.market.bars.INTERVALS`)."""
    limits: tuple[RateLimit, ...]
    """What the provider allows; the pipeline waits (and says so) rather than exceed it."""
    base_url: str

    def requests(
        self, market: Market, symbol: str, interval: str, first: date, last: date
    ) -> list[FetchRequest]:
        """The requests whose answers cover ``symbol``'s bars from day ``first`` to
        ``last`` (a provider that only serves recent bars plans what it can)."""
        ...

    def send(self, request: FetchRequest, timeout: float) -> RawResponse:
        """Send ``request`` (with the key, if any); FetchError ``network`` when no answer
        came, ``auth`` when a key is needed and missing."""
        ...

    def parse(self, response: RawResponse, market: Market) -> Parsed:
        """The bars of an answer, or FetchError naming what is wrong with it (a rate-limit
        note, error JSON, an HTML page, a truncated or empty body, an unknown symbol)."""
        ...


class ProviderFactory(Protocol):
    """Builds a provider: ``variant`` is the part after ``:`` in a provider spec (the
    exchange of ``ccxt:binance``; None for most), ``base_url`` None means the provider's
    default (or the ``TTG_LAB_<NAME>_URL`` environment variable)."""

    def __call__(self, variant: str | None, base_url: str | None) -> DataProvider: ...


PROVIDERS: Registry[ProviderFactory] = Registry("data provider")
"""Data provider factories by name (``alphavantage``, ``ccxt``, ``eastmoney``)."""
