"""A ledger row: the one definition of what a run's ledger records, and of its columns.

Every row (a fill, a refused order, a step's no-trade, an imported AI-Trader action) is
a :class:`LedgerRow`; every frame of ledger rows takes its columns from
:data:`LEDGER_COLUMNS` (or a subset derived from it here).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, Literal

LedgerStatus = Literal["filled", "rejected", "none"]
"""How an action ended: filled, refused, or ``none`` for a step in which nothing was ordered."""


@dataclass(frozen=True)
class LedgerRow:
    """One action of a run, as the ledger keeps it (cash and holdings after it)."""

    step_index: int
    ts: datetime
    action: str
    symbol: str | None
    quantity: float
    fill_price: float | None
    fees: float
    cash_after: float
    holdings: dict[str, Any]
    order_id: str
    status: LedgerStatus
    reason: str = ""

    def as_record(self) -> dict[str, Any]:
        """The row's columns by name, as the store inserts them."""
        return asdict(self)


LEDGER_COLUMNS: list[str] = [f.name for f in fields(LedgerRow)]
"""The columns of a ledger row, in order: what :meth:`Run.ledger` shows."""

CITED_COLUMNS: list[str] = [
    "id",
    *(c for c in LEDGER_COLUMNS if c not in ("cash_after", "holdings")),
]
"""A ledger row as the analyst and citations see it: its id and what it did."""

REPRODUCED_COLUMNS: list[str] = [c for c in LEDGER_COLUMNS if c not in ("holdings", "order_id")]
"""Ledger columns two runs of the same decisions must share (order ids may differ: an
LLM provider's call ids; holdings follow from the rest)."""
