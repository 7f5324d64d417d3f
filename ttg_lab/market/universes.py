"""Named symbol universes: the symbols a fetch asks for when given a universe's name.

A universe is the symbol list of a shipped dataset (the NASDAQ-100 of ``us_daily``, with
its benchmark QQQ), so ``ttg-lab data fetch --universe nasdaq100`` extends exactly the
symbols the shipped runs trade.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.market.shipped import DEFAULT_DATA_DIR, read_shipped


@dataclass(frozen=True)
class Universe:
    """A named list of symbols of one market: those of shipped dataset ``dataset`` but
    ``computed`` (indexes the lab's sources compute rather than quote)."""

    name: str
    market: str
    dataset: str
    description: str
    computed: tuple[str, ...] = ()

    def symbols(self, data_dir: Path = DEFAULT_DATA_DIR) -> list[str]:
        """The universe's symbols, sorted."""
        held = set(read_shipped(self.dataset, data_dir)["symbol"].unique().tolist())
        return sorted(held - set(self.computed))


UNIVERSES: dict[str, Universe] = {
    u.name: u
    for u in (
        Universe("nasdaq100", "us", "us_daily", "NASDAQ-100 constituents and QQQ"),
        Universe("sse50", "cn", "cn_daily", "SSE-50 constituents and the index"),
        Universe("crypto", "crypto", "crypto_daily", "the shipped crypto coins", computed=("CD5",)),
    )
}


def universe_symbols(name: str, market: str, data_dir: Path = DEFAULT_DATA_DIR) -> list[str]:
    """The symbols of universe ``name``, which must be one of ``market``'s."""
    universe = UNIVERSES.get(str(name).strip())
    if universe is None:
        known = ", ".join(UNIVERSES)
        raise NotFoundError(f"unknown universe {name!r}; known universes: {known}")
    if universe.market != market:
        raise ValidationError(
            f"universe {universe.name!r} is of the {universe.market} market, not {market!r}"
        )
    return universe.symbols(data_dir)
