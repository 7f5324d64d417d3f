"""Load bar frames into the store and read them back.

A load is one transaction: the ``stock_prices`` rows of the frame's (market, interval,
symbols) are deleted and the frame inserted, and the ``datasets`` row is written, so a
reload is idempotent and a failure leaves the previous rows as they were. Only
SQLAlchemy Core constructs are used, so SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from ttg_lab.dates import inclusive_end, parse_optional_date
from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.market.bars import BAR_COLUMNS, INTERVALS, ImportedBars
from ttg_lab.market.importers import VALUE_COLUMNS, read_bars, sort_bars, validate_bars
from ttg_lab.market.markets import get_market
from ttg_lab.market.shipped import DEFAULT_DATA_DIR, SHIPPED, shipped_bars
from ttg_lab.store.database import Store
from ttg_lab.store.schema import Dataset, StockPrice, utcnow

FINGERPRINT_VERSION = b"ttg-lab bars v1\n"
_CHUNK = 500
"""Symbols per ``IN (...)`` list, well under every backend's bound-parameter limit."""

DATASET_COLUMNS: list[str] = [
    "name",
    "market",
    "interval",
    "source",
    "fingerprint",
    "rows",
    "symbols",
    "first_ts",
    "last_ts",
    "loaded_at",
]


def fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 (hex) of the bars, independent of row order, index, platform and run.

    Serialises the frame sorted by (symbol, ts): a version tag, the row count, the
    NUL-separated UTF-8 symbols, ts as little-endian int64 nanoseconds and each value
    column as little-endian float64 (with -0.0 folded into 0.0).
    """
    bars = sort_bars(frame)
    digest = hashlib.sha256(FINGERPRINT_VERSION)
    digest.update(len(bars).to_bytes(8, "little"))
    digest.update("\0".join(str(s) for s in bars["symbol"]).encode("utf-8") + b"\0")
    digest.update(bars["ts"].to_numpy(dtype="datetime64[ns]").astype("<i8").tobytes())
    for column in VALUE_COLUMNS:
        digest.update((bars[column].to_numpy(dtype="float64") + 0.0).astype("<f8").tobytes())
    return digest.hexdigest()


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _rows(frame: pd.DataFrame, market: str, interval: str) -> list[dict[str, Any]]:
    """The frame as ``stock_prices`` parameter dicts (plain Python types)."""
    stamps = pd.DatetimeIndex(frame["ts"]).to_pydatetime()
    symbols = frame["symbol"].tolist()
    values = {c: frame[c].to_numpy(dtype="float64").tolist() for c in VALUE_COLUMNS}
    return [
        {
            "market": market,
            "interval": interval,
            "symbol": symbols[i],
            "ts": stamps[i],
            "open": values["open"][i],
            "high": values["high"][i],
            "low": values["low"][i],
            "close": values["close"][i],
            "volume": values["volume"][i],
        }
        for i in range(len(symbols))
    ]


def _record_dataset(
    session: Session, name: str, market: str, bars: ImportedBars, digest: str
) -> None:
    """Create or update the ``datasets`` row describing ``bars``."""
    frame = bars.frame
    fields: dict[str, Any] = {
        "market": market,
        "interval": bars.interval,
        "source": bars.source,
        "fingerprint": digest,
        "rows": len(frame),
        "symbols": bars.symbols,
        "first_ts": pd.Timestamp(frame["ts"].min()).to_pydatetime(),
        "last_ts": pd.Timestamp(frame["ts"].max()).to_pydatetime(),
        "loaded_at": utcnow(),
    }
    existing = session.scalars(select(Dataset).where(Dataset.name == name)).one_or_none()
    if existing is None:
        session.add(Dataset(name=name, **fields))
    else:
        for key, value in fields.items():
            setattr(existing, key, value)
    session.flush()


def load_bars(store: Store, name: str, market: str, bars: ImportedBars) -> int:
    """Load ``bars`` as dataset ``name`` of ``market``; the number of rows stored.

    One transaction: existing rows of the same market, interval and symbols are replaced
    and the ``datasets`` row is created or updated. On any error nothing changes.
    """
    get_market(market)
    if not name or not name.strip():
        raise ValidationError("a dataset needs a non-empty name")
    if bars.interval not in INTERVALS:
        raise ValidationError(f"interval {bars.interval!r} is not one of {', '.join(INTERVALS)}")
    frame = sort_bars(bars.frame)
    validate_bars(frame, bars.source, bars.interval)
    bars = ImportedBars(frame, bars.interval, bars.source)
    digest = fingerprint(frame)
    rows = _rows(frame, market, bars.interval)
    with store.session() as session:
        for chunk in _chunks(bars.symbols):
            session.execute(
                delete(StockPrice).where(
                    StockPrice.market == market,
                    StockPrice.interval == bars.interval,
                    StockPrice.symbol.in_(chunk),
                )
            )
        session.execute(insert(StockPrice), rows)
        _record_dataset(session, name.strip(), market, bars, digest)
    return len(rows)


def _stored_rows(session: Session, market: str, interval: str, symbols: Sequence[str]) -> int:
    total = 0
    for chunk in _chunks(symbols):
        total += (
            session.scalar(
                select(func.count())
                .select_from(StockPrice)
                .where(
                    StockPrice.market == market,
                    StockPrice.interval == interval,
                    StockPrice.symbol.in_(chunk),
                )
            )
            or 0
        )
    return total


def load_shipped(
    store: Store, data_dir: Path = DEFAULT_DATA_DIR, names: Sequence[str] | None = None
) -> dict[str, int]:
    """Load the shipped datasets (all, or ``names``); rows loaded per dataset.

    A dataset already recorded with the same fingerprint, market and interval whose rows
    are all still in ``stock_prices`` is skipped (0 rows), so this is safe to call at
    every start.
    """
    wanted = list(SHIPPED) if names is None else list(names)
    unknown = [n for n in wanted if n not in SHIPPED]
    if unknown:
        known = ", ".join(SHIPPED)
        raise NotFoundError(f"unknown shipped dataset(s) {', '.join(unknown)}; known: {known}")
    loaded: dict[str, int] = {}
    for name in wanted:
        spec = SHIPPED[name]
        bars = shipped_bars(name, data_dir)
        digest = fingerprint(bars.frame)
        with store.session() as session:
            existing = session.scalars(select(Dataset).where(Dataset.name == name)).one_or_none()
            current = (
                existing is not None
                and existing.fingerprint == digest
                and existing.market == spec.market
                and existing.interval == spec.interval
                and _stored_rows(session, spec.market, spec.interval, bars.symbols)
                == len(bars.frame)
            )
        loaded[name] = 0 if current else load_bars(store, name, spec.market, bars)
    return loaded


def list_datasets(store: Store) -> pd.DataFrame:
    """The ``datasets`` table as a frame (one row per loaded dataset, sorted by name)."""
    with store.session() as session:
        records = session.scalars(select(Dataset).order_by(Dataset.name)).all()
        data = [{c: getattr(r, c) for c in DATASET_COLUMNS} for r in records]
    return pd.DataFrame(data, columns=DATASET_COLUMNS)


def load_file(
    store: Store,
    path: str | Path,
    market: str,
    format: str = "auto",
    name: str | None = None,
) -> int:
    """Import a price file into the store as dataset ``name`` (default: the file's stem)."""
    get_market(market)
    path = Path(path)
    bars = read_bars(path, format)
    return load_bars(store, name or path.stem, market, bars)


def read_price_frame(
    store: Store,
    market: str,
    interval: str,
    symbols: Sequence[str] | None = None,
    start: datetime | str | pd.Timestamp | None = None,
    end: datetime | str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Stored bars of ``market``/``interval`` (``BAR_COLUMNS``, sorted by symbol, ts).

    ``symbols``, ``start`` and ``end`` (both inclusive; an end given as a day covers that
    day) narrow the selection.
    """
    timezone = get_market(market).timezone
    if interval not in INTERVALS:
        raise ValidationError(f"interval {interval!r} is not one of {', '.join(INTERVALS)}")
    begin = parse_optional_date(start, "start of the bars", timezone)
    finish = parse_optional_date(end, "end of the bars", timezone)
    columns = [getattr(StockPrice, c) for c in BAR_COLUMNS]
    query = select(*columns).where(StockPrice.market == market, StockPrice.interval == interval)
    if symbols is not None:
        query = query.where(StockPrice.symbol.in_(list(symbols)))
    if begin is not None:
        query = query.where(StockPrice.ts >= begin)
    if finish is not None:
        query = query.where(StockPrice.ts <= inclusive_end(finish))
    with store.session() as session:
        result = session.execute(query.order_by(StockPrice.symbol, StockPrice.ts)).all()
    frame = pd.DataFrame([tuple(r) for r in result], columns=BAR_COLUMNS)
    frame["symbol"] = frame["symbol"].astype(object)
    frame["ts"] = pd.to_datetime(frame["ts"]).astype("datetime64[ns]")
    for column in VALUE_COLUMNS:
        frame[column] = frame[column].astype("float64")
    return frame


__all__ = [
    "fingerprint",
    "list_datasets",
    "load_bars",
    "load_file",
    "load_shipped",
    "read_price_frame",
]
