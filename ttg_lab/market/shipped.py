"""Market data that ships with the repository, and the one-off build that produced it.

The shipped datasets are Parquet files (``data/market/<name>.parquet``, zstd) holding
the canonical bar frame, every bar stamped with its start (see :mod:`ttg_lab.market.bars`).
:func:`build_shipped` made them from AI-Trader's public data layout, converting each
source's label convention (:attr:`ShippedDataset.source_label`) and checking the bars
against their market; the product only ever reads the Parquet files (:func:`read_shipped`).

Maintainers rebuild with ``python -m ttg_lab.market.shipped SOURCE_DIR OUT_DIR``.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ttg_lab.errors import DataFileError, NotFoundError
from ttg_lab.market.bars import INTRADAY_MINUTES, BarLabel, ImportedBars
from ttg_lab.market.checks import check_market_bars, compare_with_daily
from ttg_lab.market.importers import (
    read_aitrader_merged_jsonl,
    read_alpha_vantage_json,
    read_csv_bars,
    sort_bars,
    validate_bars,
)
from ttg_lab.market.markets import MARKETS

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
"""The lab's data folder in a source checkout; shipped files are in its ``market/``."""
SHIPPED_SUBDIR = "market"


@dataclass(frozen=True)
class ShippedDataset:
    """One dataset shipped with the repo: what it is and which file holds it."""

    name: str
    market: str
    interval: str
    filename: str
    description: str
    source_label: BarLabel = "start"
    """How the source stamps its intraday bars; the build stores their starts."""

    def earlier_builds(self, frame: pd.DataFrame) -> list[pd.DataFrame]:
        """What earlier releases shipped as this dataset, rebuilt from ``frame``: before
        bars carried their start, an end-labelled source was stored as labelled."""
        if self.source_label != "end" or self.interval not in INTRADAY_MINUTES:
            return []
        shift = pd.Timedelta(minutes=INTRADAY_MINUTES[self.interval])
        return [frame.assign(ts=frame["ts"] + shift)]


SHIPPED: dict[str, ShippedDataset] = {
    d.name: d
    for d in (
        ShippedDataset(
            "us_daily",
            "us",
            "1d",
            "us_daily.parquet",
            "NASDAQ-100 constituents (AI-Trader's 101 tickers, GOOG and GOOGL both) and QQQ, "
            "daily, 2025-06-10..2025-10-30 (100 trading days). Alpha Vantage "
            "TIME_SERIES_DAILY via AI-Trader. The stray 'FB' file (not in AI-Trader's "
            "universe) is left out.",
        ),
        ShippedDataset(
            "us_hourly",
            "us",
            "60min",
            "us_hourly.parquet",
            "NASDAQ-100 (AI-Trader's 101 tickers) and QQQ, 60-minute bars starting "
            "10:00..15:00 US/Eastern, 2025-10-01 10:00..2025-11-10 15:00 (174 bars per "
            "symbol). Alpha Vantage TIME_SERIES_INTRADAY via AI-Trader, which stamps bars "
            "by their start (the 15:00 bar closes at the day's close); the source has no "
            "09:30-10:00 bar.",
        ),
        ShippedDataset(
            "cn_daily",
            "cn",
            "1d",
            "cn_daily.parquet",
            "SSE-50 constituents and the SSE-50 index 000016.SH, daily, 2025-06-11..2025-11-18 "
            "(the index from 2025-06-12; a few source days are missing, e.g. 2025-06-16 for "
            "5 symbols and suspensions). Before 2025-10-09 from AI-Trader's per-symbol "
            "files; from 2025-10-09 from its "
            "merged.jsonl (Tushare), which AI-Trader's A-share runs used (its open-only "
            "2025-11-19 bars are dropped). Index: per-symbol file to 2025-11-14, then "
            "index_daily_sse_50.json with volume converted from lots to shares (x100).",
        ),
        ShippedDataset(
            "cn_hourly",
            "cn",
            "60min",
            "cn_hourly.parquet",
            "SSE-50 constituents, 60-minute bars starting 09:30, 10:30, 13:00, 14:00 "
            "Asia/Shanghai, 2025-10-09 09:30..2025-11-19 14:00 (120 bars per symbol). "
            "AI-Trader's A_stock_hourly.csv, which labels each bar by its end (10:30, 11:30, "
            "14:00, 15:00: the 10:30 bar opens at the day's open). No index bars. Up to "
            "their ex-dividend days (2025-10-14..2025-11-07) the source's prices of 12 "
            "symbols are lowered by the dividend (0.04-0.98 CNY), so they differ from "
            "cn_daily there.",
            source_label="end",
        ),
        ShippedDataset(
            "crypto_daily",
            "crypto",
            "1d",
            "crypto_daily.parquet",
            "10 coins quoted in USDT (BTC, ETH, XRP, SOL, ADA, SUI, LINK, AVAX, LTC, DOT), "
            "daily UTC, 2024-11-26..2025-11-15 (the in-progress 2025-11-16 bar of the source "
            "is dropped), plus AI-Trader's CD5 index 2025-11-01..2025-11-15. The CD5 source "
            "has high = low = 0 and volume 0 on every day: high/low are set to "
            "max/min(open, close) there, so CD5 high/low carry no intraday information.",
        ),
    )
}

US_EXCLUDED: dict[str, str] = {
    "FB": "not in AI-Trader's NASDAQ-100 universe (its merged.jsonl); 79 bars at ~$41, "
    "not Meta Platforms (which is META)",
}
"""US per-symbol files the build leaves out, with the reason."""


def shipped_path(name: str, data_dir: Path = DEFAULT_DATA_DIR) -> Path:
    """The Parquet file of shipped dataset ``name``: ``data_dir/market/<name>.parquet``.

    ``data_dir`` is the lab's data folder (``Settings.data_dir``). A folder that holds the
    Parquet files directly (such as ``data/market`` itself) is accepted too.
    """
    filename = _dataset(name).filename
    nested = Path(data_dir) / SHIPPED_SUBDIR / filename
    direct = Path(data_dir) / filename
    return direct if direct.is_file() and not nested.is_file() else nested


def _dataset(name: str) -> ShippedDataset:
    try:
        return SHIPPED[name]
    except KeyError:
        known = ", ".join(SHIPPED)
        raise NotFoundError(f"unknown shipped dataset {name!r}; known: {known}") from None


def read_shipped(name: str, data_dir: Path = DEFAULT_DATA_DIR) -> pd.DataFrame:
    """The validated bar frame of shipped dataset ``name`` (``BAR_COLUMNS``, sorted)."""
    dataset = _dataset(name)
    path = shipped_path(name, data_dir)
    if not path.is_file():
        raise DataFileError(path, f"shipped dataset {name!r} is missing")
    try:
        frame = pd.read_parquet(path, engine="pyarrow")
    except Exception as exc:  # pyarrow raises several unrelated types for broken files
        raise DataFileError(path, f"unreadable Parquet file: {exc}") from None
    validate_bars(frame, path, dataset.interval)
    return sort_bars(frame)


def write_bars(frame: pd.DataFrame, path: Path) -> None:
    """Write a canonical bar frame as compact, zstd-compressed Parquet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sort_bars(frame).to_parquet(
        path,
        engine="pyarrow",
        compression="zstd",
        compression_level=19,
        use_dictionary=["symbol"],  # dictionary-encoding the floats makes them bigger
        index=False,
    )


def calendar_gaps(frame: pd.DataFrame) -> dict[str, list[pd.Timestamp]]:
    """Per symbol, the dataset timestamps (union over symbols) within its span it lacks."""
    calendar = pd.DatetimeIndex(frame["ts"].unique()).sort_values()
    gaps: dict[str, list[pd.Timestamp]] = {}
    for symbol, group in frame.groupby("symbol", sort=True):
        stamps = pd.DatetimeIndex(group["ts"])
        span = calendar[(calendar >= stamps.min()) & (calendar <= stamps.max())]
        missing = span.difference(stamps)
        if len(missing):
            gaps[str(symbol)] = list(missing)
    return gaps


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    return sort_bars(pd.concat(parts, ignore_index=True))


def _per_symbol_files(folder: Path, notes: list[str]) -> list[Path]:
    """``daily_prices_*.json`` in ``folder``; ``Adaily_*`` twins verified identical and skipped."""
    files = sorted(folder.glob("daily_prices_*.json"))
    for twin in sorted(folder.glob("Adaily_prices_*.json")):
        original = folder / twin.name[1:]
        if not original.is_file():
            raise DataFileError(twin, f"duplicate-looking file without {original.name}")
        same = read_alpha_vantage_json(twin).frame.equals(read_alpha_vantage_json(original).frame)
        if not same:
            raise DataFileError(twin, f"differs from {original.name}; decide which to ship")
        notes.append(f"{twin}: identical bars to {original.name}; skipped")
    return files


def _build_us(folder: Path, notes: list[str]) -> pd.DataFrame:
    parts = []
    for path in _per_symbol_files(folder, notes):
        symbol = path.stem.removeprefix("daily_prices_")
        if symbol in US_EXCLUDED:
            notes.append(f"{path}: left out ({US_EXCLUDED[symbol]})")
            continue
        parts.append(read_alpha_vantage_json(path).frame)
    return _concat(parts)


def _build_cn_daily(a_stock: Path, notes: list[str]) -> pd.DataFrame:
    merged = read_aitrader_merged_jsonl(a_stock / "merged.jsonl", partial="skip")
    if merged.skipped:
        notes.append(
            f"cn_daily: merged.jsonl open-only last bars dropped: {merged.skipped_partial}"
        )
    recent = merged.frame
    cutover = recent["ts"].min()
    stocks_end = recent["ts"].max()
    parts = [recent]
    mismatches: list[str] = []
    for path in _per_symbol_files(a_stock / "A_stock_data", notes):
        if path.stem.startswith("daily_prices_000016"):
            continue
        # One of AI-Trader's per-symbol files writes two numbers as "1,435.1100".
        older = read_alpha_vantage_json(path, thousands=True).frame
        overlap = older.merge(recent, on=["symbol", "ts"], suffixes=("", "_new"))
        for column in ("open", "high", "low", "close"):
            bad = overlap[overlap[column] != overlap[f"{column}_new"]]
            mismatches += [f"{r.symbol} {r.ts:%Y-%m-%d} {column}" for r in bad.itertuples()]
        parts.append(older[older["ts"] < cutover])
    if mismatches:
        notes.append(
            "cn_daily: per-symbol files disagree with merged.jsonl (merged.jsonl kept) at "
            + ", ".join(sorted(set(mismatches)))
        )
    index = read_alpha_vantage_json(a_stock / "A_stock_data" / "daily_prices_000016.SHH.json").frame
    later = read_alpha_vantage_json(a_stock / "index_daily_sse_50.json").frame
    overlap = index.merge(later, on=["symbol", "ts"], suffixes=("", "_lots"))
    ratio = (overlap["volume"] / overlap["volume_lots"]).tail(5)
    if not ((ratio - 100).abs() < 1e-6).all():
        raise DataFileError(
            a_stock / "index_daily_sse_50.json", "volume is not in lots (x100) as expected"
        )
    tail = later[(later["ts"] > index["ts"].max()) & (later["ts"] <= stocks_end)].copy()
    tail["volume"] = tail["volume"] * 100
    notes.append(f"cn_daily: index bars appended from index_daily_sse_50.json: {len(tail)}")
    stocks = _concat(parts)
    # A few per-symbol files start early (601088 on 2025-05-27, ...): start the dataset on
    # the first day every constituent has, so early steps do not see a 1-3 stock universe.
    common_start = stocks.groupby("symbol")["ts"].min().max()
    early = stocks[stocks["ts"] < common_start]
    if len(early):
        counts = early.groupby("symbol").size().to_dict()
        notes.append(f"cn_daily: bars before {common_start:%Y-%m-%d} dropped: {counts}")
    return _concat([stocks[stocks["ts"] >= common_start], index, tail])


def _repaired_cd5(path: Path, scratch: Path, notes: list[str]) -> Path:
    """A copy of the CD5 file whose zero high/low are set to max/min(open, close)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    repaired = 0
    for bar in doc["Time Series (Daily)"].values():
        if float(bar["2. high"]) == 0 and float(bar["3. low"]) == 0:
            o, c = float(bar["1. open"]), float(bar["4. close"])
            bar["2. high"], bar["3. low"] = repr(max(o, c)), repr(min(o, c))
            repaired += 1
    notes.append(f"crypto_daily: CD5 bars with high = low = 0 repaired: {repaired}")
    out = scratch / path.name
    out.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return out


def _build_crypto(crypto: Path, notes: list[str]) -> pd.DataFrame:
    parts = []
    for path in sorted((crypto / "coin").glob("daily_prices_*.json")):
        coin = path.stem.removeprefix("daily_prices_")
        frame = read_alpha_vantage_json(path, symbol=f"{coin}-USDT").frame
        meta = json.loads(path.read_text(encoding="utf-8"))["Meta Data"]
        refreshed = pd.Timestamp(meta["3. Last Refreshed"]).normalize()
        in_progress = frame["ts"] >= refreshed
        if in_progress.any():
            notes.append(f"{path}: in-progress bar(s) on {refreshed:%Y-%m-%d} dropped")
        parts.append(frame[~in_progress])
    with tempfile.TemporaryDirectory() as scratch:
        cd5 = _repaired_cd5(crypto / "CD5_crypto_index.json", Path(scratch), notes)
        parts.append(read_alpha_vantage_json(cd5, symbol="CD5").frame)
    return _concat(parts)


def build_shipped(source_dir: Path, out_dir: Path) -> dict[str, int]:
    """Build every shipped Parquet file from AI-Trader's data layout; rows per dataset.

    ``out_dir`` is the folder the files go in (``data/market`` in the repository).

    Reads ``source_dir`` (``us_daily/``, ``us_hourly/``, ``a_stock/``, ``crypto/``) with
    the importers, applies the documented source fixes, and writes ``out_dir/<name>.parquet``.
    Oddities found along the way are logged at INFO level.
    """
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    notes: list[str] = []
    frames: dict[str, pd.DataFrame] = {
        "us_daily": _build_us(source_dir / "us_daily", notes),
        "us_hourly": _build_us(source_dir / "us_hourly", notes),
        "cn_daily": _build_cn_daily(source_dir / "a_stock", notes),
        "cn_hourly": read_csv_bars(
            source_dir / "a_stock" / "A_stock_data" / "A_stock_hourly.csv",
            interval="60min",
            label=SHIPPED["cn_hourly"].source_label,
        ).frame,
        "crypto_daily": _build_crypto(source_dir / "crypto", notes),
    }
    for name, dataset in SHIPPED.items():
        daily = frames.get(f"{dataset.market}_daily")
        if dataset.interval in INTRADAY_MINUTES and daily is not None:
            check = compare_with_daily(
                frames[name], daily, MARKETS[dataset.market], dataset.interval
            )
            notes.append(f"{name}: {check.summary()}")
    rows: dict[str, int] = {}
    for name, frame in frames.items():
        dataset = SHIPPED[name]
        path = out_dir / dataset.filename
        validate_bars(frame, path, dataset.interval)
        check_market_bars(ImportedBars(frame, dataset.interval, str(path)), MARKETS[dataset.market])
        for symbol, missing in calendar_gaps(frame).items():
            shown = ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in missing[:5])
            notes.append(f"{name}: {symbol} lacks {len(missing)} bar(s) of the calendar: {shown}")
        write_bars(frame, path)
        rows[name] = len(frame)
    for note in notes:
        log.info("%s", note)
    return rows


def shipped_bars(name: str, data_dir: Path = DEFAULT_DATA_DIR) -> ImportedBars:
    """Shipped dataset ``name`` as :class:`ImportedBars` (source names the dataset)."""
    dataset = _dataset(name)
    frame = read_shipped(name, data_dir)
    return ImportedBars(frame, dataset.interval, f"shipped:{name}")


def main(argv: list[str] | None = None) -> int:
    """``python -m ttg_lab.market.shipped SOURCE_DIR OUT_DIR``: rebuild the shipped files."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m ttg_lab.market.shipped SOURCE_DIR OUT_DIR", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = build_shipped(Path(args[0]), Path(args[1]))
    for name, count in rows.items():
        size = (Path(args[1]) / SHIPPED[name].filename).stat().st_size
        print(f"{name}: {count} rows, {size / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
