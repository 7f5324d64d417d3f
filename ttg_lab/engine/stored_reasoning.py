"""Stored reasoning: filter, search and step through the reasoning entries of runs, with
the trades each entry led to. What the run reader, the reasoning browser and the analyst
show comes from here."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import bindparam, func, literal_column, select, table

from ttg_lab.dates import day_of, inclusive_end, parse_optional_date
from ttg_lab.engine.ledger import CITED_COLUMNS
from ttg_lab.errors import ValidationError
from ttg_lab.market.markets import MARKETS
from ttg_lab.store.database import Store
from ttg_lab.store.schema import LedgerEntry, ReasoningEntry, TradingModel, TradingRun

REASONING_TYPES: tuple[str, ...] = ("plan", "analysis", "decision", "reflection")
COLUMNS = [
    "id",
    "run_id",
    "model",
    "run_number",
    "step_index",
    "ts",
    "type",
    "content",
    "order_ids",
]


def search_reasoning(
    store: Store,
    run_id: int | None = None,
    model: str | None = None,
    types: list[str] | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    text: str | None = None,
    step: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[pd.DataFrame, int]:
    """Entries matching every given filter (newest step last) and how many match in all.

    ``text`` matches case-insensitively anywhere in the content.
    """
    unknown = sorted(set(types or ()) - set(REASONING_TYPES))
    if unknown:
        raise ValidationError(
            f"unknown reasoning type(s) {', '.join(unknown)}; types: {', '.join(REASONING_TYPES)}"
        )
    if limit < 1 or limit > 1000 or offset < 0:
        raise ValidationError("limit must be 1 to 1000 and offset not negative")
    given = start is not None or end is not None
    timezone, interval = _scope(store, run_id, model) if given else (None, None)
    begin = parse_optional_date(start, "reasoning start", timezone)
    finish = parse_optional_date(end, "reasoning end", timezone)
    if begin is not None and interval == "1d":
        begin = day_of(begin)  # a daily step is named by its day
    if begin and finish and finish < begin:
        raise ValidationError(f"end {finish:%Y-%m-%d} is before start {begin:%Y-%m-%d}")
    conditions: list[Any] = []
    if run_id is not None:
        conditions.append(ReasoningEntry.run_id == run_id)
    if model:
        conditions.append(TradingModel.signature == model)
    if types:
        conditions.append(ReasoningEntry.type.in_(types))
    if begin:
        conditions.append(ReasoningEntry.ts >= begin)
    if finish:
        conditions.append(ReasoningEntry.ts <= inclusive_end(finish))
    if step is not None:
        conditions.append(ReasoningEntry.step_index == step)
    if text and text.strip():
        conditions.append(_text_condition(store, text.strip()))
    base = (
        select(
            ReasoningEntry.id,
            ReasoningEntry.run_id,
            TradingModel.signature,
            TradingRun.run_number,
            ReasoningEntry.step_index,
            ReasoningEntry.ts,
            ReasoningEntry.type,
            ReasoningEntry.content,
            ReasoningEntry.order_ids,
        )
        .join(TradingRun, TradingRun.id == ReasoningEntry.run_id)
        .join(TradingModel, TradingModel.id == TradingRun.model_id)
        .where(*conditions)
    )
    with store.session() as session:
        total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
        rows = session.execute(base.order_by(ReasoningEntry.id).limit(limit).offset(offset)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=COLUMNS), int(total)


def _scope(store: Store, run_id: int | None, model: str | None) -> tuple[str | None, str | None]:
    """The time zone of the one market the filtered entries trade in, and the bar interval
    of the one run they come from (None where not known)."""
    query = select(TradingModel.market, TradingRun.mode).join(
        TradingRun, TradingRun.model_id == TradingModel.id
    )
    if run_id is not None:
        query = query.where(TradingRun.id == run_id)
    elif model:
        query = query.where(TradingModel.signature == model)
    else:
        return None, None
    with store.session() as session:
        row = session.execute(query.limit(1)).first()
    if row is None or row.market not in MARKETS:
        return None, None
    interval = "1d" if run_id is not None and row.mode == "daily" else None
    return MARKETS[row.market].timezone, interval


def _text_condition(store: Store, text: str) -> Any:
    """Entries containing every word of ``text`` (as a word prefix), through the database's
    full-text index; text without word characters falls back to a substring match."""
    words = re.findall(r"\w+", text.lower())
    if not words:
        return ReasoningEntry.content.ilike(f"%{_escape_like(text)}%", escape="\\")
    if store.dialect == "sqlite":
        query = " ".join(f'"{w}"*' for w in words)
        matches: Any = (
            select(literal_column("rowid"))
            .select_from(table("reasoning_fts"))
            .where(literal_column("reasoning_fts").op("MATCH")(bindparam("fts_query", query)))
        )
        return ReasoningEntry.id.in_(matches)
    if store.dialect == "postgresql":
        query = " & ".join(f"{w}:*" for w in words)
        return func.to_tsvector("simple", ReasoningEntry.content).op("@@")(
            func.to_tsquery("simple", query)
        )
    return ReasoningEntry.content.ilike(f"%{_escape_like(text)}%", escape="\\")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def run_steps_with_reasoning(store: Store, run_id: int) -> list[tuple[int, datetime]]:
    """The steps of a run that have reasoning, in order (for stepping day by day)."""
    with store.session() as session:
        rows = session.execute(
            select(ReasoningEntry.step_index, func.min(ReasoningEntry.ts))
            .where(ReasoningEntry.run_id == run_id)
            .group_by(ReasoningEntry.step_index)
            .order_by(ReasoningEntry.step_index)
        ).all()
    return [(int(s), t) for s, t in rows]


def trades_of(
    store: Store, run_id: int, order_ids: list[str] | None = None, step: int | None = None
) -> pd.DataFrame:
    """Ledger rows of a run by order id or step (the trades reasoning led to), with the
    columns a citation shows (:data:`~ttg_lab.engine.ledger.CITED_COLUMNS`)."""
    columns = CITED_COLUMNS
    query = select(*[getattr(LedgerEntry, c) for c in columns]).where(
        LedgerEntry.run_id == run_id, LedgerEntry.status != "none"
    )
    if order_ids is not None:
        query = query.where(LedgerEntry.order_id.in_(order_ids or ["-"]))
    if step is not None:
        query = query.where(LedgerEntry.step_index == step)
    with store.session() as session:
        rows = session.execute(query.order_by(LedgerEntry.id)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)
