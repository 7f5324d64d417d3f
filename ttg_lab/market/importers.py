"""Readers that turn market-data files into validated :class:`ImportedBars`.

Every reader returns the canonical bar frame (``BAR_COLUMNS``, sorted by symbol and ts)
or raises :class:`DataFileError` naming the file and, where it can, the line: a broken
file is refused whole, never half-returned. All readers share :func:`validate_bars`.

Intraday stamps are read with the source's label convention (``label="start"``, the
default, or ``"end"``) and stored as bar starts (see :mod:`ttg_lab.market.bars`); an
intraday file may not mix in date-only stamps (daily bars). Checks that need the market
(symbols, calendar, price range) run when the bars are loaded
(:mod:`ttg_lab.market.checks`); the result keeps each bar's source line for them.

Numbers must be plain decimals (``"271.99"``, ``"1e3"``); anything else is refused with
its line. The Alpha Vantage reader can opt in to thousands separators (``"1,435.11"``),
which one of AI-Trader's own A-share files contains.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ttg_lab.errors import DataFileError, ValidationError
from ttg_lab.market.bars import (
    BAR_COLUMNS,
    INTERVALS,
    BarLabel,
    ImportedBars,
    check_label,
    to_starts,
)
from ttg_lab.registry import Registry

log = logging.getLogger(__name__)

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
VALUE_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")
REL_TOLERANCE = 1e-9
"""Relative slack allowed in the high/low consistency checks (float noise only)."""

_FIELD_ALIASES: dict[str, str] = {
    "open": "open",
    "buy price": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "sell price": "close",
    "volume": "volume",
}
_FIELD_PREFIX = re.compile(r"^\d+[a-z]?\.\s*")
_SERIES_KEY = re.compile(r"^Time Series \((?P<what>[^)]*)\)$")
_JSON_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')
_DATE_ONLY = re.compile(r"^\s*(?:\d{4}-\d{2}-\d{2}|\d{8})\s*$")
_GROUPED_NUMBER = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$")

_TS_ALIASES = ("timestamp", "ts", "datetime", "date", "trade_date", "time")
_SYMBOL_ALIASES = ("symbol", "stock_code", "ts_code", "ticker", "code")
_CSV_VALUE_ALIASES: dict[str, tuple[str, ...]] = {"volume": ("volume", "vol")}


@dataclass(frozen=True)
class JsonlImport(ImportedBars):
    """Bars from an AI-Trader ``merged.jsonl`` plus the partial bars that were skipped.

    ``skipped`` describes each skipped trailing partial bar as ``"SYMBOL TS (line N)"``.
    """

    skipped: tuple[str, ...] = ()

    @property
    def skipped_partial(self) -> int:
        """How many trailing partial bars were skipped (0 unless ``partial="skip"``)."""
        return len(self.skipped)


@dataclass
class _Raw:
    """Bars as parsed text, before they become a frame: one list entry per bar."""

    symbols: list[str]
    stamps: list[str]
    values: list[list[float]]
    lines: list[int | None]

    @classmethod
    def empty(cls) -> _Raw:
        return cls([], [], [], [])

    def add(self, symbol: str, stamp: str, values: list[float], line: int | None) -> None:
        self.symbols.append(symbol)
        self.stamps.append(stamp)
        self.values.append(values)
        self.lines.append(line)


def canonical_symbol(raw: str) -> str:
    """AI-Trader's canonical spelling of ``raw``: trimmed, ``600028.SHH`` -> ``600028.SH``.

    The trailing extra ``H`` comes from AI-Trader's file names (``daily_prices_<code>.SHH``)
    and leaks into some files' metadata; exchanges know the code as ``.SH``.
    """
    symbol = raw.strip()
    if symbol.upper().endswith(".SHH"):
        symbol = symbol[:-1]
    return symbol


def parse_number(
    text: Any, path: Path, line: int | None, what: str, thousands: bool = False
) -> float:
    """``text`` as a float, or a :class:`DataFileError` saying which value was not numeric."""
    if isinstance(text, bool):
        raise DataFileError(path, f"{what}: {text!r} is not a number", line)
    if isinstance(text, int | float):
        return float(text)
    if not isinstance(text, str) or not text.strip():
        raise DataFileError(path, f"{what}: {text!r} is not a number", line)
    cleaned = text.strip()
    if thousands and _GROUPED_NUMBER.match(cleaned):
        cleaned = cleaned.replace(",", "")
    try:
        return float(cleaned)
    except ValueError:
        raise DataFileError(path, f"{what}: {text!r} is not a number", line) from None


def _field_name(key: str) -> str | None:
    """The bar column a source field feeds (``"4. sell price"`` -> ``close``), or None."""
    name = _FIELD_PREFIX.sub("", key.strip().lower())
    name = re.sub(r"\s*\(usd\)$", "", name)
    return _FIELD_ALIASES.get(name)


def _interval_of(series_key: str) -> str | None:
    """``'1d'``/``'60min'`` for an Alpha Vantage series key, None if it is not one."""
    match = _SERIES_KEY.match(series_key)
    if match is None:
        return None
    what = match.group("what").strip().lower()
    if what in ("daily", "digital currency daily"):
        return "1d"
    return what.replace(" ", "")


def _check_interval(interval: str, path: Path, line: int | None) -> str:
    if interval not in INTERVALS:
        known = ", ".join(INTERVALS)
        raise DataFileError(path, f"interval {interval!r} is not supported; known: {known}", line)
    return interval


def _key_lines(text: str) -> dict[str, list[int]]:
    """Every JSON object key in ``text`` mapped to the physical lines it appears on, in order."""
    found: dict[str, list[int]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        for match in _JSON_KEY.finditer(line):
            found.setdefault(match.group(1), []).append(number)
    return found


def _read_text(path: Path) -> str:
    """The file's text; empty files are refused here so every reader says so the same way."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataFileError(path, "file not found") from None
    except UnicodeDecodeError as exc:
        raise DataFileError(path, f"not UTF-8 text ({exc.reason})") from None
    if not text.strip():
        raise DataFileError(path, "file is empty")
    return text


def _pairs_hook(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Keep JSON objects as key/value lists so duplicate keys are seen, not overwritten."""
    return pairs


def _loads(text: str, path: Path, line_offset: int = 0) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_pairs_hook)
    except json.JSONDecodeError as exc:
        raise DataFileError(path, f"invalid JSON: {exc.msg}", exc.lineno + line_offset) from None


def _series_bars(
    raw: _Raw,
    series: Any,
    symbol: str,
    path: Path,
    line_of: Callable[[str, int], int | None],
    thousands: bool = False,
    partial_ok: bool = False,
) -> list[tuple[str, int | None]]:
    """Add one Alpha Vantage-style series to ``raw``; return partial bars if ``partial_ok``."""
    if not isinstance(series, list):
        raise DataFileError(path, "time series is not a JSON object", line_of("", 0))
    partial: list[tuple[str, int | None]] = []
    seen: dict[str, int] = {}
    for stamp, record in series:
        occurrence = seen.get(stamp, 0)
        seen[stamp] = occurrence + 1
        line = line_of(stamp, occurrence)
        if not isinstance(record, list):
            raise DataFileError(path, f"bar {stamp}: not a JSON object", line)
        fields: dict[str, float] = {}
        for key, value in record:
            column = _field_name(key)
            if column is not None:
                fields[column] = parse_number(
                    value, path, line, f"{symbol} {stamp} {key}", thousands
                )
        missing = [c for c in VALUE_COLUMNS if c not in fields]
        if missing:
            if partial_ok and "open" in fields:
                partial.append((stamp, line))
                continue
            raise DataFileError(path, f"bar {symbol} {stamp} lacks {', '.join(missing)}", line)
        raw.add(symbol, stamp, [fields[c] for c in VALUE_COLUMNS], line)
    return partial


def _split_document(doc: Any, path: Path, line: int | None) -> tuple[str | None, str, Any]:
    """(metadata symbol, interval, series) of one Alpha Vantage-style JSON object."""
    if not isinstance(doc, list):
        raise DataFileError(path, "expected a JSON object with 'Meta Data' and a time series", line)
    meta_symbol: str | None = None
    found: list[tuple[str, Any]] = []
    for key, value in doc:
        if key == "Meta Data" and isinstance(value, list):
            for meta_key, meta_value in value:
                if _FIELD_PREFIX.sub("", meta_key.lower()) == "symbol" and isinstance(
                    meta_value, str
                ):
                    meta_symbol = meta_value
        else:
            interval = _interval_of(key)
            if interval is not None:
                found.append((interval, value))
    if not found:
        detail = ""
        for key, value in doc:
            if key in ("Error Message", "Information", "Note"):
                detail = f" (the file says: {value})"
        raise DataFileError(path, f"no 'Time Series (...)' section found{detail}", line)
    if len(found) > 1:
        raise DataFileError(path, "more than one time series in one object", line)
    interval, series = found[0]
    return meta_symbol, _check_interval(interval, path, line), series


def read_alpha_vantage_json(
    path: str | Path,
    symbol: str | None = None,
    thousands: bool = False,
    label: BarLabel = "start",
) -> ImportedBars:
    """Bars of one Alpha Vantage ``TIME_SERIES_DAILY`` / ``TIME_SERIES_INTRADAY`` JSON file.

    The interval comes from the series key (``Time Series (Daily)`` -> ``1d``,
    ``Time Series (60min)`` -> ``60min``); the symbol from ``Meta Data``/``2. Symbol``
    unless ``symbol`` is given. Errors name the line of the offending timestamp key.
    ``thousands=True`` also accepts grouped numbers such as ``"1,435.11"``. Alpha Vantage
    stamps intraday bars by their start (its 15:00 bar closes at the day's close).
    """
    path = Path(path)
    return alpha_vantage_bars(_read_text(path), path, symbol, thousands, label)


def alpha_vantage_bars(
    text: str,
    source: str | Path,
    symbol: str | None = None,
    thousands: bool = False,
    label: BarLabel = "start",
) -> ImportedBars:
    """Bars of one Alpha Vantage time-series document given as ``text`` (a file's or an
    answer's): the one parser behind :func:`read_alpha_vantage_json` and the Alpha
    Vantage data provider. ``source`` names where the text came from in errors (a
    :class:`DataFileError`) and in the result. Series keys ``Time Series (Daily)``,
    ``(60min)``... and ``(Digital Currency Daily)`` are known; fields may be spelled
    ``1. open`` or ``1a. open (USD)``.
    """
    label = check_label(label)
    path = Path(source)
    doc = _loads(text, path)
    meta_symbol, interval, series = _split_document(doc, path, 1)
    name = symbol or meta_symbol
    if not name:
        raise DataFileError(path, "no symbol in 'Meta Data' and none given")
    lines = _key_lines(text)

    def line_of(stamp: str, occurrence: int) -> int | None:
        found = lines.get(stamp, [])
        return found[occurrence] if occurrence < len(found) else (found[-1] if found else None)

    raw = _Raw.empty()
    _series_bars(raw, series, canonical_symbol(name), path, line_of, thousands)
    frame, row_lines = _to_frame(raw, interval, path, label)
    return ImportedBars(frame, interval, str(path), row_lines)


def read_aitrader_merged_jsonl(
    path: str | Path, partial: Literal["error", "skip"] = "error", label: BarLabel = "start"
) -> JsonlImport:
    """Bars of an AI-Trader ``merged.jsonl``: one Alpha Vantage-style object per line.

    Fields may use AI-Trader's renamed keys (``1. buy price`` = open, ``4. sell price`` =
    close). AI-Trader cuts the last day of each symbol to its open only. Policy for bars
    lacking any of open/high/low/close/volume:

    * ``partial="error"`` (default): refuse the file, naming the line.
    * ``partial="skip"``: drop such a bar only when it is the symbol's latest bar and has
      an open; the skipped bars are listed in the result's ``skipped`` and logged. A
      partial bar anywhere else is still an error.

    Errors name the physical line of the file (the symbol's line). AI-Trader's US files
    (Alpha Vantage) stamp bars by their start, its A-share hourly files by their end.
    """
    label = check_label(label)
    if partial not in ("error", "skip"):
        raise ValidationError(f"partial must be 'error' or 'skip', not {partial!r}")
    path = Path(path)
    text = _read_text(path)
    raw = _Raw.empty()
    interval: str | None = None
    skipped: list[str] = []
    for number, line_text in enumerate(text.splitlines(), start=1):
        if not line_text.strip():
            continue
        doc = _loads(line_text, path, line_offset=number - 1)
        meta_symbol, line_interval, series = _split_document(doc, path, number)
        if interval is None:
            interval = line_interval
        elif line_interval != interval:
            raise DataFileError(
                path, f"interval {line_interval} differs from earlier lines' {interval}", number
            )
        if not meta_symbol:
            raise DataFileError(path, "no symbol in 'Meta Data'", number)
        symbol = canonical_symbol(meta_symbol)
        found = _series_bars(
            raw, series, symbol, path, _fixed_line(number), partial_ok=partial == "skip"
        )
        if found:
            complete = [s for s, sym in zip(raw.stamps, raw.symbols, strict=True) if sym == symbol]
            latest = max(_parse_stamps(complete, path, [number] * len(complete)), default=None)
            for stamp, _line in found:
                when = _parse_stamps([stamp], path, [number])[0]
                if len(found) > 1 or (latest is not None and when <= latest):
                    raise DataFileError(
                        path, f"bar {symbol} {stamp} lacks prices and is not the last bar", number
                    )
                skipped.append(f"{symbol} {stamp} (line {number})")
    if interval is None:
        raise DataFileError(path, "no bars found")
    frame, lines = _to_frame(raw, interval, path, label)
    if skipped:
        log.info("%s: skipped %d trailing partial bar(s)", path, len(skipped))
    return JsonlImport(frame, interval, str(path), lines, tuple(skipped))


def _fixed_line(number: int) -> Callable[[str, int], int | None]:
    """A line finder that puts every bar on line ``number`` (one JSON object per line)."""

    def line_of(_stamp: str, _occurrence: int) -> int | None:
        return number

    return line_of


def _csv_column(header: Sequence[str], aliases: Sequence[str]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for alias in aliases:
        if alias in lowered:
            return lowered.index(alias)
    return None


def read_csv_bars(
    path: str | Path,
    interval: str | None = None,
    symbol: str | None = None,
    label: BarLabel = "start",
) -> ImportedBars:
    """Bars of a plain CSV with a header row; extra columns are ignored.

    Needs a timestamp column (``timestamp``/``ts``/``datetime``/``date``/``trade_date``),
    a symbol column (``symbol``/``stock_code``/``ts_code``) unless ``symbol`` is given,
    and ``open``, ``high``, ``low``, ``close``, ``volume`` (or ``vol``). Without
    ``interval``, bars all at midnight are ``1d`` and anything else ``60min`` (where a
    date-only stamp is then refused as a daily bar among intraday ones). Errors name the
    physical line.
    """
    label = check_label(label)
    path = Path(path)
    text = _read_text(path)
    reader = csv.reader(text.splitlines(keepends=True))
    header = next(reader)
    ts_col = _csv_column(header, _TS_ALIASES)
    sym_col = _csv_column(header, _SYMBOL_ALIASES)
    value_cols = {c: _csv_column(header, _CSV_VALUE_ALIASES.get(c, (c,))) for c in VALUE_COLUMNS}
    missing = [c for c, i in value_cols.items() if i is None]
    if ts_col is None:
        missing.insert(0, "timestamp")
    if sym_col is None and symbol is None:
        missing.insert(0, "symbol")
    if missing:
        raise DataFileError(path, f"header lacks column(s): {', '.join(missing)}", 1)
    raw = _Raw.empty()
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataFileError(path, f"{len(row)} fields, header has {len(header)}", line)
        name = symbol if sym_col is None else row[sym_col]
        if not name or not name.strip():
            raise DataFileError(path, "empty symbol", line)
        assert ts_col is not None
        values = []
        for column, index in value_cols.items():
            assert index is not None
            values.append(parse_number(row[index], path, line, f"{column}"))
        raw.add(canonical_symbol(name), row[ts_col].strip(), values, line)
    if not raw.symbols:
        raise DataFileError(path, "no bars found")
    if interval is None:
        stamps = _parse_stamps(raw.stamps, path, raw.lines)
        interval = "1d" if bool((stamps == stamps.normalize()).all()) else "60min"
    _check_interval(interval, path, None)
    frame, lines = _to_frame(raw, interval, path, label)
    return ImportedBars(frame, interval, str(path), lines)


def _parse_stamps(
    stamps: Sequence[str], path: Path, lines: Sequence[int | None]
) -> pd.DatetimeIndex:
    """Naive ``datetime64[ns]`` of ``stamps``; the first unreadable one raises with its line."""
    series = pd.Series(list(stamps), dtype=object)
    parsed = pd.to_datetime(series, errors="coerce", format="ISO8601")
    bad = parsed.isna()
    if bad.any():
        retry = pd.to_datetime(series[bad], errors="coerce", format="%Y%m%d")
        parsed = parsed.where(~bad, retry)
        bad = parsed.isna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataFileError(path, f"unreadable timestamp {stamps[first]!r}", lines[first])
    if getattr(parsed.dt, "tz", None) is not None:
        raise DataFileError(path, "timestamps carry a timezone; use naive exchange-local times")
    return pd.DatetimeIndex(parsed.astype("datetime64[ns]"))


def _to_frame(
    raw: _Raw, interval: str, path: Path, label: BarLabel
) -> tuple[pd.DataFrame, tuple[int | None, ...]]:
    """The canonical sorted frame of ``raw`` (stamps as bar starts) and each row's line,
    validated against ``path``'s lines."""
    if not raw.symbols:
        raise DataFileError(path, "no bars found")
    if interval != "1d":
        for stamp, line in zip(raw.stamps, raw.lines, strict=True):
            if _DATE_ONLY.match(stamp):
                raise DataFileError(
                    path,
                    f"{stamp!r} has no time of day: a daily bar among {interval} bars",
                    line,
                )
    values = np.asarray(raw.values, dtype="float64").reshape(len(raw.symbols), len(VALUE_COLUMNS))
    frame = pd.DataFrame(values, columns=list(VALUE_COLUMNS))
    frame.insert(0, "ts", to_starts(_parse_stamps(raw.stamps, path, raw.lines), interval, label))
    frame.insert(0, "symbol", pd.Series(raw.symbols, dtype=object))
    validate_bars(frame, path, interval, raw.lines)
    order = _bar_order(frame)
    return sort_bars(frame), tuple(raw.lines[i] for i in order)


def _bar_order(frame: pd.DataFrame) -> list[int]:
    """Row positions of ``frame`` in canonical (symbol, ts) order, as :func:`sort_bars`."""
    keys = pd.DataFrame({"symbol": frame["symbol"].to_numpy(), "ts": frame["ts"].to_numpy()})
    return keys.sort_values(["symbol", "ts"], kind="mergesort").index.tolist()


def sorted_bars(bars: ImportedBars) -> ImportedBars:
    """``bars`` with the frame in canonical order (:func:`sort_bars`), lines following."""
    order = _bar_order(bars.frame)
    lines = None if bars.lines is None else tuple(bars.lines[i] for i in order)
    return replace(bars, frame=sort_bars(bars.frame), lines=lines)


def sort_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with exactly ``BAR_COLUMNS`` in canonical dtypes, sorted by symbol and ts."""
    out = frame.loc[:, BAR_COLUMNS].copy()
    out["symbol"] = out["symbol"].astype(object)
    out["ts"] = out["ts"].astype("datetime64[ns]")
    for column in VALUE_COLUMNS:
        out[column] = out[column].astype("float64")
    out = out.sort_values(["symbol", "ts"], kind="mergesort")
    return out.reset_index(drop=True)


def validate_bars(
    frame: pd.DataFrame,
    path: str | Path,
    interval: str | None = None,
    lines: Sequence[int | None] | None = None,
) -> None:
    """Refuse ``frame`` at its first bad bar; ``lines[i]`` is row ``i``'s source line.

    Checks: the bar columns are present; symbols non-empty; timestamps present (at
    midnight for ``1d``); prices finite and > 0; high >= max(open, close) and
    low <= min(open, close) up to ``REL_TOLERANCE``; volume finite and >= 0; no
    duplicate (symbol, ts). Every failure is a :class:`DataFileError` naming ``path``.
    """
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise DataFileError(path, f"missing column(s): {', '.join(missing)}")
    if frame.empty:
        raise DataFileError(path, "no bars found")
    if lines is not None and len(lines) != len(frame):
        raise ValueError("lines must give one line per row")

    def fail(mask: Any, message: Callable[[int], str]) -> None:
        hits = np.flatnonzero(np.asarray(mask, dtype=bool))
        if hits.size:
            row = int(hits[0])
            line = lines[row] if lines is not None else None
            where = "" if lines is not None else f" (row {row})"
            raise DataFileError(path, message(row) + where, line)

    symbols = frame["symbol"].to_numpy(dtype=object)
    stamps = pd.DatetimeIndex(frame["ts"])

    def bar(row: int) -> str:
        return f"bar {symbols[row]} {stamps[row]}"

    fail([not isinstance(s, str) or not s.strip() for s in symbols], lambda r: "empty symbol")
    fail(stamps.isna(), lambda r: f"{symbols[r]}: missing timestamp")
    if interval == "1d":
        fail(stamps != stamps.normalize(), lambda r: f"{bar(r)}: daily bar not at midnight")
    values = {c: frame[c].to_numpy(dtype="float64") for c in VALUE_COLUMNS}

    def check_price(column: str) -> None:
        col = values[column]
        fail(~np.isfinite(col), lambda r: f"{bar(r)}: {column} {col[r]} is not finite")
        fail(col <= 0, lambda r: f"{bar(r)}: {column} {col[r]} is not > 0")

    for column in PRICE_COLUMNS:
        check_price(column)
    volume = values["volume"]
    fail(~np.isfinite(volume), lambda r: f"{bar(r)}: volume {volume[r]} is not finite")
    fail(volume < 0, lambda r: f"{bar(r)}: volume {volume[r]} is negative")
    o, h, lo, c = (values[k] for k in PRICE_COLUMNS)
    top = np.maximum(o, c)
    bottom = np.minimum(o, c)
    fail(
        h < top * (1 - REL_TOLERANCE),
        lambda r: f"{bar(r)}: high {h[r]} is below max(open, close) {top[r]}",
    )
    fail(
        lo > bottom * (1 + REL_TOLERANCE),
        lambda r: f"{bar(r)}: low {lo[r]} is above min(open, close) {bottom[r]}",
    )
    keys = pd.DataFrame({"symbol": symbols, "ts": stamps})
    fail(keys.duplicated().to_numpy(), lambda r: f"{bar(r)}: duplicate timestamp")


Reader = Callable[[Path, BarLabel], ImportedBars]


def _read_av(path: Path, label: BarLabel) -> ImportedBars:
    return read_alpha_vantage_json(path, label=label)


def _read_jsonl(path: Path, label: BarLabel) -> ImportedBars:
    return read_aitrader_merged_jsonl(path, label=label)


def _read_csv(path: Path, label: BarLabel) -> ImportedBars:
    return read_csv_bars(path, label=label)


READERS: Registry[Reader] = Registry("bar file format")
"""Formats :func:`read_bars` knows, by name (``format="auto"`` picks one of them)."""
READERS.register("alphavantage", _read_av)
READERS.register("aitrader-jsonl", _read_jsonl)
READERS.register("csv", _read_csv)


def detect_format(path: Path) -> str:
    """Guess a file's format from its extension, then its first characters."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "aitrader-jsonl"
    if suffix in (".csv", ".txt"):
        return "csv"
    text = _read_text(path)
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        return "csv"
    lines = [line for line in stripped.splitlines() if line.strip()]
    if len(lines) > 1 and all(line.lstrip().startswith("{") for line in lines):
        try:
            json.loads(lines[0])
        except json.JSONDecodeError:
            return "alphavantage"
        return "aitrader-jsonl"
    return "alphavantage"


def read_bars(path: str | Path, format: str = "auto", label: BarLabel = "start") -> ImportedBars:
    """Bars of ``path`` read by the named reader (``format="auto"``: detected), intraday
    stamps read as bar starts (``label="start"``) or ends (``"end"``)."""
    label = check_label(label)
    path = Path(path)
    name = detect_format(path) if format == "auto" else format
    return READERS.get(name)(path, label)
