"""Merge bars into the store and read them back.

**Loading merges.** Bars are keyed by (market, interval, symbol, start time). A load adds
the bars the store lacks, skips the ones it holds identically, and treats a bar whose
values differ from the stored one as a conflict: the load is refused with a report of
every conflict (stored and new values) unless ``replace=True``, which overwrites them.
Nothing is ever deleted by a load, and ``load_shipped`` (``ttg-lab init``) keeps a
user's differing bars as they are. A load is one transaction: on any refusal or error
nothing changes. Before anything is written the bars pass :func:`validate_bars` and the
market's checks (:mod:`ttg_lab.market.checks`), and after the merge the touched days'
intraday bars are compared with their daily bars.

**The datasets table** holds two kinds of rows. A row per load name records what that
load brought (source, fingerprint of its bars, their count and span): provenance, never
a claim about what the store holds now. A row per market and interval, named
``bars:<market>:<interval>``, carries the running fingerprint of every stored bar there:
the sum (mod 2**256) of one SHA-256 per bar, updated with each added or replaced bar.
A run records the hash of all rows of its market and interval
(:func:`ttg_lab.market.cache.data_fingerprint`); since a load that changes bars updates
the ``bars:`` row and a load that changes nothing writes nothing, that hash changes
exactly when the bars a run reads change.
:func:`list_datasets` derives counts, symbols and spans from the bars themselves.

Only SQLAlchemy Core/ORM constructs shared by SQLite and PostgreSQL are used.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ttg_lab.dates import inclusive_end, parse_optional_date
from ttg_lab.errors import DataFileError, NotFoundError, ValidationError
from ttg_lab.market.bars import BAR_COLUMNS, INTERVALS, INTRADAY_MINUTES, BarLabel, ImportedBars
from ttg_lab.market.checks import DailyCheck, check_market_bars, compare_with_daily
from ttg_lab.market.importers import (
    VALUE_COLUMNS,
    read_bars,
    sort_bars,
    sorted_bars,
    validate_bars,
)
from ttg_lab.market.markets import Market, get_market
from ttg_lab.market.shipped import DEFAULT_DATA_DIR, SHIPPED, shipped_bars
from ttg_lab.store.database import Store
from ttg_lab.store.schema import Dataset, StockPrice, utcnow
from ttg_lab.text import check_name

log = logging.getLogger(__name__)

FINGERPRINT_VERSION = b"ttg-lab bars v1\n"
BAR_HASH_VERSION = b"ttg-lab bar v1\0"
_MODULUS = 2**256
_CHUNK = 500
"""Symbols or ids per ``IN (...)`` list, well under every backend's bound-parameter limit."""
MAX_NAME_CHARS = 100
"""Width of ``datasets.name``."""
BARS_PREFIX = "bars:"
RESERVED_PREFIXES = (BARS_PREFIX, "news:")
"""Dataset names the lab writes itself; a load may not take them."""
INTERVAL_NAMES: dict[str, str] = {"1d": "daily", "60min": "hourly"}
MERGE_ATTEMPTS = 3
"""Tries of a load whose insert lost a race with a concurrent load of the same bars."""
CONFLICTS_SHOWN = 20
"""Conflicts a refusal lists in its message (all of them are in the result)."""

OnConflict = Literal["refuse", "replace", "keep"]

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


def bar_hash_sum(frame: pd.DataFrame) -> int:
    """Sum (mod 2**256) of one SHA-256 per bar: an order-free fingerprint of a set of
    bars that a merge updates by adding the bars it writes and subtracting those it
    overwrites."""
    count = len(frame)
    if not count:
        return 0
    record = np.empty(count, dtype=[("ts", "<i8"), ("values", "<f8", (len(VALUE_COLUMNS),))])
    record["ts"] = frame["ts"].to_numpy(dtype="datetime64[ns]").astype("<i8")
    record["values"] = frame[list(VALUE_COLUMNS)].to_numpy(dtype="float64") + 0.0
    raw = record.tobytes()
    width = record.itemsize
    total = 0
    for i, symbol in enumerate(frame["symbol"].tolist()):
        body = raw[i * width : (i + 1) * width]
        digest = hashlib.sha256(BAR_HASH_VERSION + str(symbol).encode("utf-8") + b"\0" + body)
        total += int.from_bytes(digest.digest(), "little")
    return total % _MODULUS


def bars_row_name(market: str, interval: str) -> str:
    """The ``datasets`` row carrying the fingerprint of all bars of a market and interval."""
    return f"{BARS_PREFIX}{market}:{interval}"


def dataset_name(market: str, interval: str) -> str:
    """The name :func:`list_datasets` gives the bars of a market and interval (``us_daily``)."""
    return f"{market}_{INTERVAL_NAMES.get(interval, interval)}"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BarConflict:
    """A loaded bar whose values differ from the stored bar with the same key."""

    symbol: str
    ts: datetime
    stored: tuple[float, ...]
    new: tuple[float, ...]
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        changes = ", ".join(
            f"{column} stored {old:g}, new {new:g}"
            for column, old, new in zip(VALUE_COLUMNS, self.stored, self.new, strict=True)
            if old != new
        )
        return f"{self.symbol} {self.ts:%Y-%m-%d %H:%M}{where}: {changes}"


@dataclass(frozen=True)
class MergeResult:
    """What a load did: bars ``added``, ``skipped`` (stored identically), ``replaced``,
    ``kept`` (differing bars left as stored: ``load_shipped`` only) and ``retired``
    (bars of an earlier build of a shipped dataset removed: ``load_shipped`` only).
    ``conflicts`` lists every bar that differed from the stored one; ``daily_check`` how
    the touched days' intraday bars compared with their daily bars."""

    name: str
    market: str
    interval: str
    source: str
    added: int = 0
    skipped: int = 0
    replaced: int = 0
    kept: int = 0
    retired: int = 0
    conflicts: tuple[BarConflict, ...] = ()
    daily_check: DailyCheck | None = None

    @property
    def changed(self) -> bool:
        """Whether the load changed the stored bars."""
        return bool(self.added or self.replaced or self.retired)

    @property
    def warnings(self) -> list[str]:
        """What a user should know although the load went through."""
        notes = []
        if self.kept:
            notes.append(f"{self.kept} stored bar(s) differ from the loaded ones and were kept")
        if self.daily_check is not None and self.daily_check.mismatches:
            notes.append(self.daily_check.summary())
        return notes

    def summary(self) -> str:
        """One line for people: the counts."""
        others = [(self.replaced, "replaced"), (self.kept, "kept as stored")]
        others.append((self.retired, "retired"))
        parts = [f"{self.added:,} added", f"{self.skipped:,} identical skipped"]
        parts += [f"{n:,} {what}" for n, what in others if n]
        return f"{self.name} ({self.market} {self.interval}): " + ", ".join(parts)


class BarConflictError(ValidationError):
    """A load refused because bars differ from the stored ones; ``result`` lists them."""

    def __init__(self, result: MergeResult, new: int) -> None:
        self.result = result
        shown = "\n  ".join(str(c) for c in result.conflicts[:CONFLICTS_SHOWN])
        more = len(result.conflicts) - CONFLICTS_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{result.source}: {len(result.conflicts)} bar(s) differ from the stored ones; "
            f"nothing was loaded ({new:,} new and {result.skipped:,} identical bar(s) "
            "included). Give replace=True (--replace) to overwrite them:\n  " + shown + tail
        )


# --------------------------------------------------------------------------- merge


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
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
            **{c: values[c][i] for c in VALUE_COLUMNS},
        }
        for i in range(len(symbols))
    ]


def _stored(
    session: Session,
    market: str,
    interval: str,
    symbols: Sequence[str] | None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Stored bars (``id`` + ``BAR_COLUMNS``) of ``symbols`` (all: None) from ``start`` to
    ``end`` (inclusive), in canonical dtypes."""
    columns = [StockPrice.id, *(getattr(StockPrice, c) for c in BAR_COLUMNS)]
    base = select(*columns).where(StockPrice.market == market, StockPrice.interval == interval)
    if start is not None:
        base = base.where(StockPrice.ts >= start)
    if end is not None:
        base = base.where(StockPrice.ts <= end)
    queries = (
        [base]
        if symbols is None
        else [base.where(StockPrice.symbol.in_(list(c))) for c in _chunks(symbols)]
    )
    found = [tuple(r) for q in queries for r in session.execute(q)]
    frame = pd.DataFrame(found, columns=["id", *BAR_COLUMNS])
    frame["symbol"] = frame["symbol"].astype(object)
    frame["ts"] = pd.to_datetime(frame["ts"]).astype("datetime64[ns]")
    for column in VALUE_COLUMNS:
        frame[column] = frame[column].astype("float64")
    return frame


def _lock_bars_row(session: Session, market: str, interval: str) -> Dataset:
    """The market's and interval's ``bars:`` row, locked for this transaction (created,
    with the fingerprint of the bars already stored, when missing).

    Its first statement writes, so concurrent loads of one market and interval
    serialise here (a row lock on PostgreSQL, the write lock on SQLite) and each reads
    the bars as the one before left them.
    """
    name = bars_row_name(market, interval)
    session.execute(update(Dataset).where(Dataset.name == name).values(rows=Dataset.rows))
    row = session.scalars(select(Dataset).where(Dataset.name == name)).one_or_none()
    if row is not None:
        return row
    now = utcnow().replace(tzinfo=None)
    row = Dataset(
        name=name,
        market=market,
        interval=interval,
        source="every stored bar",
        fingerprint="",
        rows=0,
        symbols=[],
        first_ts=now,
        last_ts=now,
    )
    session.add(row)
    session.flush()  # a concurrent creator makes this fail: the caller tries again
    existing = _stored(session, market, interval, None)
    row.fingerprint = f"{bar_hash_sum(existing):064x}"
    return row


def _settle_bars_row(session: Session, row: Dataset, delta: int) -> None:
    """Add ``delta`` to the row's fingerprint sum and set its count and span from the bars."""
    total = (int(row.fingerprint or "0", 16) + delta) % _MODULUS
    count, first, last = session.execute(
        select(func.count(), func.min(StockPrice.ts), func.max(StockPrice.ts)).where(
            StockPrice.market == row.market, StockPrice.interval == row.interval
        )
    ).one()
    row.fingerprint = f"{total:064x}"
    row.rows = int(count or 0)
    row.first_ts = first or row.first_ts
    row.last_ts = last or row.last_ts
    row.loaded_at = utcnow()


def _record_load(session: Session, name: str, bars: ImportedBars, market: str) -> None:
    """Create or update the provenance row of load ``name``."""
    frame = bars.frame
    fields: dict[str, Any] = {
        "market": market,
        "interval": bars.interval,
        "source": bars.source,
        "fingerprint": fingerprint(frame),
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


def _check_name(session: Session, name: str, market: str, interval: str) -> None:
    """A load name keeps to one market and interval (its row is part of their fingerprint)."""
    row = session.scalars(select(Dataset).where(Dataset.name == name)).one_or_none()
    if row is not None and (row.market, row.interval) != (market, interval):
        raise ValidationError(
            f"dataset name {name!r} holds {row.market} {row.interval} bars; give this "
            f"{market} {interval} load another name"
        )


def _retire(session: Session, market: str, interval: str, old: pd.DataFrame) -> pd.DataFrame:
    """Delete the stored bars identical to ``old`` (an earlier shipped build); the deleted."""
    stored = _stored(
        session, market, interval, sorted(old["symbol"].unique()), old["ts"].min(), old["ts"].max()
    )
    same = stored.merge(sort_bars(old), on=BAR_COLUMNS, how="inner")
    for chunk in _chunks(same["id"].tolist()):
        session.execute(delete(StockPrice).where(StockPrice.id.in_(list(chunk))))
    return same


def _day_span(frame: pd.DataFrame) -> tuple[datetime, datetime]:
    """From the first day's midnight to the last day's end."""
    first = pd.Timestamp(frame["ts"].min()).normalize()
    last = pd.Timestamp(frame["ts"].max()).normalize() + pd.Timedelta(days=1)
    return first.to_pydatetime(), (last - pd.Timedelta(microseconds=1)).to_pydatetime()


def _touched_days(after: pd.DataFrame, touched: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``after`` on the (symbol, day) pairs of ``touched``."""
    keys = touched.assign(day=pd.DatetimeIndex(touched["ts"]).normalize())[["symbol", "day"]]
    tagged = after.assign(day=pd.DatetimeIndex(after["ts"]).normalize())
    inside = tagged.merge(keys.drop_duplicates(), on=["symbol", "day"], how="inner")
    return inside[BAR_COLUMNS]


def _daily_check(
    session: Session, market: Market, interval: str, after: pd.DataFrame, touched: pd.DataFrame
) -> DailyCheck | None:
    """Compare the touched days' bars (as they are after the merge) with the other
    interval's bars of those days in the store."""
    if touched.empty:
        return None
    days = _touched_days(after, touched)
    symbols = sorted(days["symbol"].unique())
    start, end = _day_span(days)
    if interval in INTRADAY_MINUTES:
        daily = _stored(session, market.code, "1d", symbols, start, end)
        return compare_with_daily(days, daily, market, interval)
    checks = [
        compare_with_daily(
            _stored(session, market.code, other, symbols, start, end), days, market, other
        )
        for other in INTRADAY_MINUTES
    ]
    return DailyCheck(sum(c.checks for c in checks), tuple(m for c in checks for m in c.mismatches))


def _merge_once(
    store: Store,
    name: str,
    market: Market,
    bars: ImportedBars,
    on_conflict: OnConflict,
    retire: pd.DataFrame | None,
) -> MergeResult:
    interval, frame = bars.interval, bars.frame
    with store.session() as session:
        bars_row = _lock_bars_row(session, market.code, interval)
        _check_name(session, name, market.code, interval)
        delta = 0
        retired = 0
        if retire is not None:
            gone = _retire(session, market.code, interval, retire)
            delta -= bar_hash_sum(gone)
            retired = len(gone)
        start, end = _day_span(frame)
        stored = _stored(session, market.code, interval, bars.symbols, start, end)
        joined = frame.merge(
            stored, on=["symbol", "ts"], how="left", suffixes=("", "_stored"), indicator=True
        )
        found = (joined["_merge"] == "both").to_numpy()
        same = np.ones(len(joined), dtype=bool)
        for column in VALUE_COLUMNS:
            same &= (joined[column] == joined[f"{column}_stored"]).to_numpy()
        new_rows = np.flatnonzero(~found)
        differ = np.flatnonzero(found & ~same)
        conflicts = _conflicts(joined.iloc[differ], [bars.line(int(i)) for i in differ])
        result = MergeResult(
            name,
            market.code,
            interval,
            bars.source,
            skipped=int((found & same).sum()),
            conflicts=conflicts,
        )
        if conflicts and on_conflict == "refuse":
            raise BarConflictError(result, len(new_rows))
        added = frame.iloc[new_rows]
        if len(added):
            session.execute(insert(StockPrice), _rows(added, market.code, interval))
            delta += bar_hash_sum(added)
        replaced = frame.iloc[differ] if on_conflict == "replace" else frame.iloc[:0]
        if len(replaced):
            ids = joined["id"].to_numpy()[differ]
            values = [
                {"id": int(ident), **{c: float(v) for c, v in zip(VALUE_COLUMNS, row, strict=True)}}
                for ident, row in zip(ids, replaced[list(VALUE_COLUMNS)].to_numpy(), strict=True)
            ]
            session.execute(update(StockPrice), values)
            delta += bar_hash_sum(replaced) - bar_hash_sum(_stored_values(joined.iloc[differ]))
        after = pd.concat([_after_merge(stored, replaced), added], ignore_index=True)
        touched = pd.concat([added, replaced], ignore_index=True)
        check = _daily_check(session, market, interval, after, touched)
        result = MergeResult(
            name,
            market.code,
            interval,
            bars.source,
            added=len(added),
            skipped=result.skipped,
            replaced=len(replaced),
            kept=len(differ) if on_conflict == "keep" else 0,
            retired=retired,
            conflicts=conflicts,
            daily_check=check,
        )
        if check is not None and check.systematic:
            raise DataFileError(
                bars.source,
                f"the {interval} bars disagree with the daily bars on most days, as bars "
                "stamped by another convention or time zone do: "
                + check.summary()
                + ". Check the label convention (start or end) and the time zone; intraday "
                "prices adjusted differently from the daily ones disagree too.",
            )
        if not result.changed:
            session.rollback()  # nothing to write: not even the fingerprint row
            return result
        _settle_bars_row(session, bars_row, delta)
        _record_load(session, name, bars, market.code)
    return result


def _conflicts(rows: pd.DataFrame, lines: list[int | None]) -> tuple[BarConflict, ...]:
    """The differing bars of merged rows, stored beside new values."""
    stored = _stored_values(rows)[list(VALUE_COLUMNS)].to_numpy(dtype="float64").tolist()
    new = rows[list(VALUE_COLUMNS)].to_numpy(dtype="float64").tolist()
    stamps = pd.DatetimeIndex(rows["ts"]).to_pydatetime()
    return tuple(
        BarConflict(str(symbol), when, tuple(old), tuple(fresh), line)
        for symbol, when, old, fresh, line in zip(
            rows["symbol"].tolist(), stamps, stored, new, lines, strict=True
        )
    )


def _stored_values(joined: pd.DataFrame) -> pd.DataFrame:
    """The stored side of merged rows, as a bar frame."""
    renamed = {f"{c}_stored": c for c in VALUE_COLUMNS}
    return joined[["symbol", "ts", *renamed]].rename(columns=renamed)


def _after_merge(stored: pd.DataFrame, replaced: pd.DataFrame) -> pd.DataFrame:
    """The stored bars with the replaced ones' new values (``BAR_COLUMNS``)."""
    kept = stored[BAR_COLUMNS]
    if replaced.empty:
        return kept
    keys = replaced[["symbol", "ts"]].assign(_new=True)
    marked = kept.merge(keys, on=["symbol", "ts"], how="left")
    return pd.concat([kept[marked["_new"].isna().to_numpy()], replaced], ignore_index=True)


def _merge(
    store: Store,
    name: str,
    market: str,
    bars: ImportedBars,
    on_conflict: OnConflict,
    retire: pd.DataFrame | None = None,
    now: datetime | None = None,
) -> MergeResult:
    """Validate ``bars`` and merge them (see the module); retried when a concurrent load
    created the market's fingerprint row or one of the same bars first. ``now``
    (exchange-local; default the wall clock) is the latest time a bar may start."""
    spec = get_market(market)
    name = check_name(name, "a dataset name", MAX_NAME_CHARS)
    if name.startswith(RESERVED_PREFIXES):
        raise ValidationError(f"dataset names starting with {name.split(':')[0]}: are the lab's")
    if bars.interval not in INTERVALS:
        raise ValidationError(f"interval {bars.interval!r} is not one of {', '.join(INTERVALS)}")
    validate_bars(bars.frame, bars.source, bars.interval, bars.lines)
    bars = sorted_bars(bars)
    check_market_bars(bars, spec, now)
    attempt = 1
    while True:
        try:
            return store.retrying(
                lambda: _merge_once(store, name, spec, bars, on_conflict, retire),
                f"loading {name}",
            )
        except IntegrityError:
            if attempt == MERGE_ATTEMPTS:
                raise
            attempt += 1


def load_bars(
    store: Store,
    name: str,
    market: str,
    bars: ImportedBars,
    replace: bool = False,
    now: datetime | None = None,
) -> MergeResult:
    """Merge ``bars`` into ``market`` as load ``name`` (see the module): new bars added,
    identical ones skipped, differing ones refused with a report (:class:`BarConflictError`,
    nothing written) unless ``replace``. One transaction. ``now`` (exchange-local; default
    the wall clock) is the latest time a bar may start: a fetch passes its clock's."""
    return _merge(store, name, market, bars, "replace" if replace else "refuse", now=now)


def load_file(
    store: Store,
    path: str | Path,
    market: str,
    format: str = "auto",
    name: str | None = None,
    label: BarLabel = "start",
    replace: bool = False,
) -> MergeResult:
    """Merge a price file into the store as load ``name`` (default: the file's stem).

    ``label`` says how the file stamps intraday bars: by their ``start`` (Alpha Vantage)
    or their ``end`` (AI-Trader's A-share hourly files, many A-share vendors).
    """
    get_market(market)
    path = Path(path)
    chosen = path.stem if name is None else name
    if isinstance(chosen, str) and chosen.strip() in SHIPPED:
        raise ValidationError(
            f"{chosen.strip()!r} is the name of a shipped dataset; give the load another name"
        )
    return load_bars(store, chosen, market, read_bars(path, format, label), replace)


def _recorded(session: Session, name: str) -> Dataset | None:
    return session.scalars(select(Dataset).where(Dataset.name == name)).one_or_none()


def _footprint(session: Session, row: Dataset) -> int:
    """Stored bars of the row's market, interval and symbols within its span."""
    total = 0
    for chunk in _chunks(list(row.symbols)):
        total += int(
            session.scalar(
                select(func.count())
                .select_from(StockPrice)
                .where(
                    StockPrice.market == row.market,
                    StockPrice.interval == row.interval,
                    StockPrice.symbol.in_(list(chunk)),
                    and_(StockPrice.ts >= row.first_ts, StockPrice.ts <= row.last_ts),
                )
            )
            or 0
        )
    return total


def load_shipped(
    store: Store, data_dir: Path = DEFAULT_DATA_DIR, names: Sequence[str] | None = None
) -> dict[str, int]:
    """Merge the shipped datasets (all, or ``names``) into the store; bars added per dataset.

    Never removes or changes what a user loaded: missing bars are added, differing
    stored bars kept (and logged). A dataset recorded with the same fingerprint whose bars
    are all in place is skipped (0), so this is cheap at every start. A store holding an
    earlier build of a dataset (``cn_hourly`` before bars carried their start) has that
    build's bars retired where they are still unchanged.
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
            row = _recorded(session, name)
            recorded = None if row is None else row.fingerprint
            intact = (
                row is not None
                and recorded == digest
                and _footprint(session, row) == len(bars.frame)
            )
        if intact:
            loaded[name] = 0
            continue
        retire = next(
            (b for b in spec.earlier_builds(bars.frame) if fingerprint(b) == recorded), None
        )
        result = _merge(store, name, spec.market, bars, "keep", retire)
        for warning in result.warnings:
            log.info("%s: %s", name, warning)
        loaded[name] = result.added
    return loaded


def shown_loads(names: Sequence[str]) -> str:
    """Load names as one line: the per-symbol loads of a fetch (``fetch:<provider>:<market>:
    <interval>:<symbol>``) grouped as ``fetch:<provider>:<market>:<interval> (N symbols)``,
    so a fetched universe does not make the line a hundred names long."""
    fetched: dict[str, int] = {}
    shown: list[str] = []
    for name in names:
        head = name.rpartition(":")[0]
        if name.startswith("fetch:") and head.count(":") >= 3:
            if head not in fetched:
                shown.append(head)
            fetched[head] = fetched.get(head, 0) + 1
        else:
            shown.append(name)
    return ", ".join(
        f"{n} ({fetched[n]} symbol{'s' if fetched[n] != 1 else ''})" if n in fetched else n
        for n in shown
    )


def list_datasets(store: Store) -> pd.DataFrame:
    """What the store holds: one row per market and interval, derived from the bars
    (count, symbols, first and last bar), with the names of the loads that went into it
    (``source``) and the bars' fingerprint; then the news loads. Sorted by name."""
    with store.session() as session:
        spans = session.execute(
            select(
                StockPrice.market,
                StockPrice.interval,
                func.count(),
                func.min(StockPrice.ts),
                func.max(StockPrice.ts),
            ).group_by(StockPrice.market, StockPrice.interval)
        ).all()
        pairs = session.execute(
            select(StockPrice.market, StockPrice.interval, StockPrice.symbol).distinct()
        ).all()
        records = session.scalars(select(Dataset).order_by(Dataset.loaded_at, Dataset.name)).all()
        rows = [{c: getattr(r, c) for c in DATASET_COLUMNS} for r in records]
    symbols: dict[tuple[str, str], list[str]] = {}
    for market, interval, symbol in pairs:
        symbols.setdefault((market, interval), []).append(symbol)
    data = []
    for market, interval, count, first, last in spans:
        mine = [r for r in rows if (r["market"], r["interval"]) == (market, interval)]
        fingerprint_row = next(
            (r for r in mine if r["name"] == bars_row_name(market, interval)), None
        )
        loads = [r for r in mine if not str(r["name"]).startswith(BARS_PREFIX)]
        data.append(
            {
                "name": dataset_name(market, interval),
                "market": market,
                "interval": interval,
                "source": shown_loads([str(r["name"]) for r in loads]),
                "fingerprint": fingerprint_row["fingerprint"] if fingerprint_row else "",
                "rows": int(count),
                "symbols": sorted(symbols.get((market, interval), [])),
                "first_ts": first,
                "last_ts": last,
                "loaded_at": max((r["loaded_at"] for r in mine), default=None),
            }
        )
    data += [r for r in rows if str(r["name"]).startswith("news:")]
    frame = pd.DataFrame(data, columns=DATASET_COLUMNS)
    return frame.sort_values("name", kind="mergesort").reset_index(drop=True)


def holds_data(store: Store) -> bool:
    """Whether :func:`list_datasets` would list anything (bars or a news load), found by
    reading one row rather than summarising every bar: opening a lab asks it each time."""
    with store.session() as session:
        bar = session.scalar(select(StockPrice.id).limit(1))
        news = session.scalar(select(Dataset.id).where(Dataset.name.startswith("news:")).limit(1))
    return bar is not None or news is not None


def list_loads(store: Store) -> pd.DataFrame:
    """Every bar load recorded (its latest version per name): what it brought, when."""
    with store.session() as session:
        records = session.scalars(select(Dataset).order_by(Dataset.loaded_at, Dataset.name)).all()
        data = [
            {c: getattr(r, c) for c in DATASET_COLUMNS}
            for r in records
            if not r.name.startswith(RESERVED_PREFIXES)
        ]
    return pd.DataFrame(data, columns=DATASET_COLUMNS)


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
    day, read by the one date parser in the market's time zone) narrow the selection.
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
    "BarConflict",
    "BarConflictError",
    "MergeResult",
    "bar_hash_sum",
    "fingerprint",
    "holds_data",
    "list_datasets",
    "list_loads",
    "load_bars",
    "load_file",
    "load_shipped",
    "read_price_frame",
]
