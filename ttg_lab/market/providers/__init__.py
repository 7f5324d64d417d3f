"""Data providers: where bars are fetched from online (see :mod:`.base` for the contract).

Importing this package registers the shipped providers; :func:`make_provider` builds one
from its spec.
"""

from __future__ import annotations

from ttg_lab.market.providers import (
    alphavantage,  # noqa: F401  (registers "alphavantage")
    ccxt_exchange,  # noqa: F401  (registers "ccxt")
    eastmoney,  # noqa: F401  (registers "eastmoney")
)
from ttg_lab.market.providers.base import (
    PROVIDERS,
    DataProvider,
    FetchRequest,
    Parsed,
    Pending,
    ProviderFactory,
    RateLimit,
    RawResponse,
)


def make_provider(spec: str, base_url: str | None = None) -> DataProvider:
    """The provider named by ``spec`` (``alphavantage``, ``ccxt:binance``...), pointed at
    ``base_url`` (or its default)."""
    name, _, variant = spec.partition(":")
    return PROVIDERS.get(name.strip())(variant.strip() or None, base_url)


__all__ = [
    "PROVIDERS",
    "DataProvider",
    "FetchRequest",
    "Parsed",
    "Pending",
    "ProviderFactory",
    "RateLimit",
    "RawResponse",
    "make_provider",
]
