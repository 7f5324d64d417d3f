"""Where bars are fetched from online: the slot Step 4's data providers plug into.

A provider (Alpha Vantage, ccxt, an A-share source) answers bars in the store's
convention as :class:`~ttg_lab.market.bars.ImportedBars`, so what it fetches goes through
the same checks and merge as a file read by :data:`~ttg_lab.market.importers.READERS`.
None ships yet: ``PROVIDERS.register(name, provider)`` adds one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ttg_lab.market.bars import ImportedBars
from ttg_lab.registry import Registry


class DataProvider(Protocol):
    """A source of bars for one or more markets."""

    def fetch_bars(
        self, symbols: Sequence[str], interval: str, start: datetime, end: datetime
    ) -> ImportedBars:
        """Bars of ``symbols`` at ``interval`` whose starts fall in ``[start, end]``."""
        ...


PROVIDERS: Registry[DataProvider] = Registry("data provider")
"""Data providers by name; empty until Step 4 registers its providers."""
