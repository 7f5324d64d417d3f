"""The canonical bar frame every importer produces and every loader consumes.

**The bar time convention.** A stored bar is stamped with its *start*, as a naive
exchange-local time: the day (00:00) for a daily bar, the first minute it covers for an
intraday bar (the 60-minute bar of 09:30-10:30 is stamped 09:30). So at a step stamped
``t`` the open of the bar ``t`` is known and nothing of it after that. Sources that
label bars by their *end* (many A-share vendors, AI-Trader's A-share hourly files: 10:30,
11:30, 14:00, 15:00) are converted when they are read (``label="end"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import pandas as pd

from ttg_lab.errors import ValidationError

BAR_COLUMNS: list[str] = ["symbol", "ts", "open", "high", "low", "close", "volume"]
"""Columns of a bar frame. ``ts`` is a naive exchange-local ``datetime64[ns]``: the day
(00:00) for daily bars, the bar's start for intraday bars. Prices are float64."""

INTERVALS: tuple[str, ...] = ("1d", "60min")
"""Bar intervals the lab understands. Daily runs use ``1d``; intraday runs use ``60min``."""

MODES: dict[str, str] = {"daily": "1d", "intraday": "60min"}
"""Run modes and the bar interval each one steps through."""

INTRADAY_MINUTES: dict[str, int] = {"60min": 60}
"""Length of each intraday interval in minutes."""

BarLabel = Literal["start", "end"]
"""How a source stamps its intraday bars: by the first minute they cover or by their end."""
BAR_LABELS: tuple[BarLabel, ...] = get_args(BarLabel)


def check_label(label: object) -> BarLabel:
    """``label`` if it is a known convention, else a clear error."""
    for known in BAR_LABELS:
        if label == known:
            return known
    raise ValidationError(
        f"bar label convention {label!r} is not one of {', '.join(BAR_LABELS)}: say whether "
        "the source stamps intraday bars by their start or their end"
    )


def to_starts(stamps: pd.DatetimeIndex, interval: str, label: BarLabel) -> pd.DatetimeIndex:
    """``stamps`` of ``interval`` bars labelled by ``label``, as bar starts.

    Daily bars are named by their day whatever the label; an end-labelled intraday bar
    starts one interval before its label (the A-share 14:00 bar covers 13:00-14:00).
    """
    if label == "start" or interval not in INTRADAY_MINUTES:
        return stamps
    return stamps - pd.Timedelta(minutes=INTRADAY_MINUTES[interval])


@dataclass(frozen=True)
class ImportedBars:
    """Bars read from one source: a frame of ``BAR_COLUMNS`` (bar starts) plus what it is.

    ``lines`` gives, row by row, the source line each bar came from (None where a source
    has no lines), so later checks can name the line of a bad bar.
    """

    frame: pd.DataFrame
    interval: str
    source: str
    lines: tuple[int | None, ...] | None = None

    @property
    def symbols(self) -> list[str]:
        return sorted(self.frame["symbol"].unique().tolist())

    def line(self, row: int) -> int | None:
        """The source line of row ``row`` (None when unknown)."""
        return self.lines[row] if self.lines is not None else None
