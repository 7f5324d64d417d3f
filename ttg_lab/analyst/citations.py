"""Citations in analyst answers: ``[trade:ID]``, ``[reasoning:ID]``, ``[date:YYYY-MM-DD]``,
``[run:ID]``. Each is checked against the store, so a made-up id shows as unresolved."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from ttg_lab.dates import parse_date
from ttg_lab.errors import ValidationError
from ttg_lab.store.database import Store
from ttg_lab.store.schema import LedgerEntry, ReasoningEntry, TradingRun

PATTERN = re.compile(r"\[(trade|reasoning|date|run):([0-9][0-9-]*)\]")


@dataclass(frozen=True)
class Citation:
    kind: str
    ref: str
    valid: bool
    label: str


def resolve(store: Store, text: str, run_ids: set[int]) -> list[Citation]:
    """Every citation in ``text``, in order, each marked valid when it exists (trades and
    reasoning must belong to one of ``run_ids``)."""
    found: list[Citation] = []
    seen: set[tuple[str, str]] = set()
    with store.session() as session:
        for kind, ref in PATTERN.findall(text):
            if (kind, ref) in seen:
                continue
            seen.add((kind, ref))
            valid, label = False, f"{kind} {ref}"
            if kind == "trade" and ref.isdigit():
                row = session.execute(
                    select(
                        LedgerEntry.run_id, LedgerEntry.action, LedgerEntry.symbol, LedgerEntry.ts
                    ).where(LedgerEntry.id == int(ref))
                ).first()
                if row is not None and row[0] in run_ids:
                    valid, label = True, f"{row[1]} {row[2]} {row[3]:%Y-%m-%d}"
            elif kind == "reasoning" and ref.isdigit():
                entry = session.get(ReasoningEntry, int(ref))
                if entry is not None and entry.run_id in run_ids:
                    valid, label = True, f"{entry.type} {entry.ts:%Y-%m-%d}"
            elif kind == "run" and ref.isdigit():
                valid = session.get(TradingRun, int(ref)) is not None
            elif kind == "date":
                valid = _is_date(ref)
            found.append(Citation(kind, ref, valid, label))
    return found


def _is_date(ref: str) -> bool:
    """A cited day is valid when the one date parser reads it as a day (no 2025-02-30)."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", ref) is None:
        return False
    try:
        parse_date(ref, "cited date")
    except ValidationError:
        return False
    return True
