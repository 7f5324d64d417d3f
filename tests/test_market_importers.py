"""Importers: exact values from real excerpts, and broken files refused with file and line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from ttg_lab.errors import DataFileError, ValidationError
from ttg_lab.market.bars import BAR_COLUMNS
from ttg_lab.market.importers import (
    canonical_symbol,
    read_aitrader_merged_jsonl,
    read_alpha_vantage_json,
    read_bars,
    read_csv_bars,
)

FIXTURES = Path(__file__).parent / "fixtures" / "market"
AAPL_DAILY = FIXTURES / "daily_prices_AAPL.json"
SINOPEC_DAILY = FIXTURES / "daily_prices_600028.SHH.json"
AAPL_HOURLY = FIXTURES / "hourly_prices_AAPL.json"
MERGED = FIXTURES / "merged.jsonl"
HOURLY_CSV = FIXTURES / "A_stock_hourly.csv"

CSV_HEADER = "stock_name,stock_code,trade_date,open,close,high,low,volume\n"


def bar(frame: pd.DataFrame, symbol: str, ts: str) -> dict[str, float]:
    """The one bar of ``symbol`` at ``ts`` as a dict of its values."""
    rows = frame[(frame["symbol"] == symbol) & (frame["ts"] == pd.Timestamp(ts))]
    assert len(rows) == 1
    return {str(k): float(v) for k, v in rows.iloc[0].drop(["symbol", "ts"]).items()}


def assert_canonical(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == BAR_COLUMNS
    assert frame["ts"].dtype == "datetime64[ns]"
    assert frame["symbol"].dtype == object
    for column in BAR_COLUMNS[2:]:
        assert frame[column].dtype == "float64"
    assert list(frame.index) == list(range(len(frame)))
    assert frame.equals(frame.sort_values(["symbol", "ts"]).reset_index(drop=True))


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first occurrence of ``needle`` in ``path``."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def assert_refused(
    excinfo: pytest.ExceptionInfo[DataFileError], path: Path, line: int | None
) -> None:
    err = excinfo.value
    assert err.path == str(path)
    assert err.line == line
    assert str(path) in str(err)
    if line is not None:
        assert f"line {line}" in str(err)


# --- real excerpts -----------------------------------------------------------------------


def test_alpha_vantage_daily_values() -> None:
    bars = read_alpha_vantage_json(AAPL_DAILY)
    assert bars.interval == "1d"
    assert bars.symbols == ["AAPL"]
    assert bars.source == str(AAPL_DAILY)
    assert_canonical(bars.frame)
    assert len(bars.frame) == 10
    assert bars.frame["ts"].iloc[0] == pd.Timestamp("2025-10-17")
    assert bar(bars.frame, "AAPL", "2025-10-30") == {
        "open": 271.99,
        "high": 274.14,
        "low": 268.48,
        "close": 271.40,
        "volume": 56447186.0,
    }


def test_alpha_vantage_a_share_symbol_is_canonical() -> None:
    bars = read_alpha_vantage_json(SINOPEC_DAILY)
    assert bars.symbols == ["600028.SH"]
    assert bar(bars.frame, "600028.SH", "2025-11-14") == {
        "open": 5.69,
        "high": 5.74,
        "low": 5.68,
        "close": 5.71,
        "volume": 121113729.0,
    }


def test_alpha_vantage_symbol_override() -> None:
    bars = read_alpha_vantage_json(AAPL_DAILY, symbol="XYZ")
    assert bars.symbols == ["XYZ"]


def test_alpha_vantage_intraday_values() -> None:
    bars = read_alpha_vantage_json(AAPL_HOURLY)
    assert bars.interval == "60min"
    assert_canonical(bars.frame)
    assert len(bars.frame) == 12
    assert bars.frame["ts"].min() == pd.Timestamp("2025-10-29 10:00")
    assert bars.frame["ts"].max() == pd.Timestamp("2025-10-30 15:00")
    assert bar(bars.frame, "AAPL", "2025-10-30 15:00") == {
        "open": 271.0884,
        "high": 271.5979,
        "low": 270.7337,
        "close": 271.1184,
        "volume": 11077995.0,
    }


def test_aitrader_jsonl_refuses_partial_bar_by_default() -> None:
    with pytest.raises(DataFileError, match="2025-10-30 lacks high") as excinfo:
        read_aitrader_merged_jsonl(MERGED)
    assert_refused(excinfo, MERGED, 1)


def test_aitrader_jsonl_skips_trailing_partial_bars_when_asked() -> None:
    bars = read_aitrader_merged_jsonl(MERGED, partial="skip")
    assert bars.interval == "1d"
    assert bars.symbols == ["AAPL", "ABNB"]
    assert_canonical(bars.frame)
    assert bars.skipped_partial == 2
    assert bars.skipped == ("AAPL 2025-10-30 (line 1)", "ABNB 2025-10-30 (line 2)")
    assert len(bars.frame) == 8
    assert bars.frame["ts"].max() == pd.Timestamp("2025-10-29")
    # '1. buy price' is the open and '4. sell price' the close.
    assert bar(bars.frame, "AAPL", "2025-10-29") == {
        "open": 269.275,
        "high": 271.41,
        "low": 267.11,
        "close": 269.70,
        "volume": 51086742.0,
    }


def test_aitrader_jsonl_partial_bar_in_the_middle_is_an_error(tmp_path: Path) -> None:
    lines = MERGED.read_text(encoding="utf-8").splitlines()
    doc = json.loads(lines[1])
    series = doc["Time Series (Daily)"]
    series["2025-10-27"] = {"1. buy price": "130.0"}
    path = tmp_path / "merged.jsonl"
    path.write_text(lines[0] + "\n" + json.dumps(doc) + "\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="not the last bar") as excinfo:
        read_aitrader_merged_jsonl(path, partial="skip")
    assert_refused(excinfo, path, 2)


def test_aitrader_jsonl_bad_partial_option() -> None:
    with pytest.raises(ValidationError):
        read_aitrader_merged_jsonl(MERGED, partial="drop")  # type: ignore[arg-type]


def test_csv_a_share_hourly_values() -> None:
    bars = read_csv_bars(HOURLY_CSV)
    assert bars.interval == "60min"
    assert bars.symbols == ["600028.SH", "600519.SH"]
    assert_canonical(bars.frame)
    assert len(bars.frame) == 8
    # Columns are in the file's order open, close, high, low: matched by name.
    assert bar(bars.frame, "600519.SH", "2025-10-09 10:30") == {
        "open": 1436.0,
        "high": 1437.44,
        "low": 1420.0,
        "close": 1426.36,
        "volume": 28764.0,
    }


def test_csv_interval_inferred_daily(tmp_path: Path) -> None:
    path = tmp_path / "daily.csv"
    path.write_text(
        "date,symbol,open,high,low,close,volume,note\n"
        "2025-01-02,ABC,10,11,9,10.5,100,x\n"
        "2025-01-03,ABC,10.5,12,10,11,200,y\n",
        encoding="utf-8",
    )
    bars = read_csv_bars(path)
    assert bars.interval == "1d"
    assert bar(bars.frame, "ABC", "2025-01-03")["close"] == 11.0


def test_read_bars_detects_formats() -> None:
    assert read_bars(AAPL_DAILY).interval == "1d"
    assert read_bars(AAPL_HOURLY, format="alphavantage").interval == "60min"
    assert read_bars(HOURLY_CSV).symbols == ["600028.SH", "600519.SH"]
    with pytest.raises(DataFileError, match="lacks high"):
        read_bars(MERGED)  # detected as aitrader-jsonl, partial bars refused


def test_read_bars_unknown_format_names_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="aitrader-jsonl, alphavantage, csv"):
        read_bars(AAPL_DAILY, format="excel")


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("AAPL", "AAPL"), ("600028.SHH", "600028.SH"), ("000016.SH", "000016.SH"), (" QQQ ", "QQQ")],
)
def test_canonical_symbol(raw: str, canonical: str) -> None:
    assert canonical_symbol(raw) == canonical


# --- broken files -------------------------------------------------------------------------


def broken_copy(tmp_path: Path, source: Path, old: str, new: str, count: int = 1) -> Path:
    """A copy of ``source`` with the first ``count`` occurrence(s) of ``old`` replaced."""
    text = source.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / source.name
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    return path


def test_invalid_json_syntax_names_decoder_line(tmp_path: Path) -> None:
    # Drop the comma after the 2025-10-29 close: the decoder stops on the next line.
    path = broken_copy(tmp_path, AAPL_DAILY, '"4. close": "269.7000",', '"4. close": "269.7000"')
    expected = line_of(path, '"4. close": "269.7000"') + 1
    with pytest.raises(DataFileError, match="invalid JSON") as excinfo:
        read_alpha_vantage_json(path)
    assert_refused(excinfo, path, expected)


def test_invalid_jsonl_syntax_names_physical_line(tmp_path: Path) -> None:
    lines = MERGED.read_text(encoding="utf-8").splitlines()
    path = tmp_path / "merged.jsonl"
    path.write_text(lines[0] + "\n" + lines[1][:-1] + "\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="invalid JSON") as excinfo:
        read_aitrader_merged_jsonl(path, partial="skip")
    assert_refused(excinfo, path, 2)


def test_non_numeric_price_names_timestamp_line(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, AAPL_DAILY, '"3. low": "267.1100"', '"3. low": "n/a"')
    with pytest.raises(DataFileError, match="'n/a' is not a number") as excinfo:
        read_alpha_vantage_json(path)
    assert_refused(excinfo, path, line_of(path, '"2025-10-29": {'))


def test_thousands_separator_is_opt_in(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, SINOPEC_DAILY, '"1. open": "5.6900"', '"1. open": "1,005.6900"')
    with pytest.raises(DataFileError, match="is not a number") as excinfo:
        read_alpha_vantage_json(path)
    assert_refused(excinfo, path, line_of(path, '"2025-11-14": {'))
    # Accepted on request; the bar then fails validation (open above high), still with line.
    with pytest.raises(DataFileError, match=re.escape("high 5.74 is below")) as excinfo:
        read_alpha_vantage_json(path, thousands=True)
    assert_refused(excinfo, path, line_of(path, '"2025-11-14": {'))


def test_high_below_low_names_timestamp_line(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, AAPL_HOURLY, '"2. high": "272.0375"', '"2. high": "270.0000"')
    with pytest.raises(DataFileError, match=re.escape("high 270.0 is below")) as excinfo:
        read_alpha_vantage_json(path)
    assert_refused(excinfo, path, line_of(path, '"2025-10-30 14:00:00": {'))


def test_negative_volume_names_csv_line(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, HOURLY_CSV, ",8632\n", ",-8632\n")
    with pytest.raises(DataFileError, match=re.escape("volume -8632.0 is negative")) as excinfo:
        read_csv_bars(path)
    assert_refused(excinfo, path, 5)


def test_non_numeric_csv_value_names_line(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, HOURLY_CSV, "5.34,5.36,5.37,5.34", "5.34,abc,5.37,5.34")
    with pytest.raises(DataFileError, match="close: 'abc' is not a number") as excinfo:
        read_csv_bars(path)
    assert_refused(excinfo, path, 8)


def test_zero_price_is_refused(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, HOURLY_CSV, "5.29,5.31,5.32,5.27", "0,5.31,5.32,5.27")
    with pytest.raises(DataFileError, match=re.escape("open 0.0 is not > 0")) as excinfo:
        read_csv_bars(path)
    assert_refused(excinfo, path, 2)


def test_duplicate_timestamp_in_json_names_second_occurrence(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, AAPL_DAILY, '"2025-10-28": {', '"2025-10-29": {')
    second = [
        n
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if '"2025-10-29"' in line
    ][1]
    with pytest.raises(DataFileError, match="duplicate timestamp") as excinfo:
        read_alpha_vantage_json(path)
    assert_refused(excinfo, path, second)


def test_duplicate_timestamp_in_csv(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    row = "中国石化,600028.SH,2025-10-09 10:30,5.29,5.31,5.32,5.27,438429\n"
    path.write_text(CSV_HEADER + row + row, encoding="utf-8")
    with pytest.raises(DataFileError, match="duplicate timestamp") as excinfo:
        read_csv_bars(path)
    assert_refused(excinfo, path, 3)


@pytest.mark.parametrize("content", ["", "   \n\n"])
@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
def test_empty_file(tmp_path: Path, content: str, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFileError, match="file is empty") as excinfo:
        read_bars(path)
    assert_refused(excinfo, path, None)


def test_file_without_bars(tmp_path: Path) -> None:
    path = tmp_path / "nobars.csv"
    path.write_text(CSV_HEADER, encoding="utf-8")
    with pytest.raises(DataFileError, match="no bars found"):
        read_csv_bars(path)
    path = tmp_path / "nobars.json"
    path.write_text('{"Meta Data": {"2. Symbol": "X"}, "Time Series (Daily)": {}}', "utf-8")
    with pytest.raises(DataFileError, match="no bars found"):
        read_alpha_vantage_json(path)


def test_json_without_series(tmp_path: Path) -> None:
    path = tmp_path / "limit.json"
    path.write_text('{"Information": "rate limit reached"}', encoding="utf-8")
    with pytest.raises(DataFileError, match="rate limit reached"):
        read_alpha_vantage_json(path)


def test_csv_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "nolow.csv"
    path.write_text(
        "stock_code,trade_date,open,close,high,volume\n"
        "600028.SH,2025-10-09 10:30,5.29,5.31,5.32,1\n",
        encoding="utf-8",
    )
    with pytest.raises(DataFileError, match="header lacks column\\(s\\): low") as excinfo:
        read_csv_bars(path)
    assert_refused(excinfo, path, 1)


def test_csv_short_row(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text(CSV_HEADER + "中国石化,600028.SH,2025-10-09 10:30,5.29,5.31\n", "utf-8")
    with pytest.raises(DataFileError, match="5 fields") as excinfo:
        read_csv_bars(path)
    assert_refused(excinfo, path, 2)


def test_csv_bad_timestamp(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, HOURLY_CSV, "2025-10-09 14:00", "2025-10-09 25:00")
    with pytest.raises(DataFileError, match="unreadable timestamp") as excinfo:
        read_csv_bars(path)
    assert_refused(excinfo, path, 6)


def test_unsupported_interval(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, AAPL_HOURLY, "Time Series (60min)", "Time Series (5min)")
    with pytest.raises(DataFileError, match="'5min' is not supported"):
        read_alpha_vantage_json(path)
