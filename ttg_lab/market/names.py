"""Company names of the shipped symbols, for masking and its audit.

Masked runs replace a symbol's company names in everything the agent reads, and the
masking audit looks for them in what was recorded, so both need the names a text may
use for a symbol: ``data/market/names.csv`` (columns ``symbol,name``, one row per
distinct spelling). Names that are ordinary words on their own are left out (Monster
Beverage, never "Monster") so the masker does not replace ordinary words.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

from ttg_lab.errors import DataFileError
from ttg_lab.market.shipped import DEFAULT_DATA_DIR, SHIPPED_SUBDIR

NAMES_FILE = DEFAULT_DATA_DIR / SHIPPED_SUBDIR / "names.csv"


def company_names(symbol: str) -> tuple[str, ...]:
    """The names a text may use for ``symbol`` (empty when the symbol is unknown)."""
    return _names_table(NAMES_FILE).get(symbol, ())


@cache
def _names_table(path: Path) -> dict[str, tuple[str, ...]]:
    """``path`` read once: symbol -> its names in file order, without repeats."""
    table: dict[str, list[str]] = {}
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames != ["symbol", "name"]:
                raise DataFileError(
                    path, f"expected the columns symbol,name, got {reader.fieldnames}"
                )
            for line, row in enumerate(reader, start=2):
                symbol, name = row["symbol"].strip(), row["name"].strip()
                if not symbol or not name:
                    raise DataFileError(path, "empty symbol or name", line=line)
                names = table.setdefault(symbol, [])
                if name not in names:
                    names.append(name)
    except OSError as exc:
        raise DataFileError(path, f"cannot read the company names file: {exc}") from exc
    return {symbol: tuple(names) for symbol, names in table.items()}
