"""The canonical bar frame every importer produces and every loader consumes."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

BAR_COLUMNS: list[str] = ["symbol", "ts", "open", "high", "low", "close", "volume"]
"""Columns of a bar frame. ``ts`` is a naive exchange-local ``datetime64[ns]``: the day
(00:00) for daily bars, the bar's label time for intraday bars. Prices are float64."""

INTERVALS: tuple[str, ...] = ("1d", "60min")
"""Bar intervals the lab understands. Daily runs use ``1d``; intraday runs use ``60min``."""


@dataclass(frozen=True)
class ImportedBars:
    """Bars read from one source file: a validated frame plus what it is."""

    frame: pd.DataFrame
    interval: str
    source: str

    @property
    def symbols(self) -> list[str]:
        return sorted(self.frame["symbol"].unique().tolist())
