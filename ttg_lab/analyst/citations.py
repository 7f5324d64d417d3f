"""Citations in analyst answers: ``[trade:ID]``, ``[reasoning:ID]``, ``[date:YYYY-MM-DD]``,
``[run:ID]``. Each is checked through the acting user's reader, so a made-up id, or one
of another user's work, shows as unresolved."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ttg_lab.dates import parse_date
from ttg_lab.engine.reader import RunReader
from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.market.masking import Mask

PATTERN = re.compile(r"\[(trade|reasoning|date|run):([0-9][0-9-]*)\]")


@dataclass(frozen=True)
class Citation:
    kind: str
    ref: str
    valid: bool
    label: str


def resolve(
    reader: RunReader, text: str, run_ids: set[int], mask: Mask | None = None
) -> list[Citation]:
    """Every citation in ``text``, in order, each marked valid when it exists and the
    reader's user may see it (trades and reasoning must belong to one of ``run_ids``).
    Ids resolve to the real rows; with a masked run's ``mask`` the labels are masked."""
    found: list[Citation] = []
    seen: set[tuple[str, str]] = set()
    for kind, ref in PATTERN.findall(text):
        if (kind, ref) in seen:
            continue
        seen.add((kind, ref))
        valid, label = False, f"{kind} {ref}"
        try:
            if kind == "trade" and ref.isdigit():
                trade = reader.trade(int(ref))
                if trade.run_id in run_ids:
                    symbol, ts = trade.symbol, trade.ts
                    if mask is not None:
                        symbol = mask.text(symbol) if symbol else symbol
                        ts = mask.when(ts)
                    valid, label = True, f"{trade.action} {symbol} {ts:%Y-%m-%d}"
            elif kind == "reasoning" and ref.isdigit():
                entry = reader.reasoning_entry(int(ref))
                if entry.run_id in run_ids:
                    ts = entry.ts if mask is None else mask.when(entry.ts)
                    valid, label = True, f"{entry.type} {ts:%Y-%m-%d}"
            elif kind == "run" and ref.isdigit():
                reader.run(int(ref))
                valid = True
            elif kind == "date":
                valid = _is_date(ref)
        except NotFoundError:
            valid = False
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
