"""Loading merges: nothing a user or the shipped data loaded is deleted or silently changed.

Every test runs on SQLite and PostgreSQL (``lab`` holds the shipped data; ``empty_db_url``
starts from nothing).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, insert, select

from ttg_lab.cli import main
from ttg_lab.errors import ValidationError
from ttg_lab.lab import Lab
from ttg_lab.market import loader
from ttg_lab.market.bars import ImportedBars
from ttg_lab.market.cache import data_fingerprint
from ttg_lab.market.loader import BarConflictError
from ttg_lab.market.shipped import SHIPPED, read_shipped
from ttg_lab.store.database import Store
from ttg_lab.store.schema import Dataset, StockPrice

HEADER = "date,symbol,open,high,low,close,volume\n"
DATA_DIR = Path(__file__).resolve().parents[1] / "data"


def csv_file(path: Path, *rows: str) -> Path:
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def stored_bar(lab: Lab, symbol: str, day: str) -> tuple[float, ...]:
    frame = loader.read_price_frame(lab.store, "us", "1d", [symbol], day, day)
    assert len(frame) == 1
    return tuple(float(v) for v in frame.iloc[0][["open", "high", "low", "close", "volume"]])


def row_of(symbol: str, day: str, values: tuple[float, ...]) -> str:
    return ",".join([day, symbol, *(repr(v) for v in values)])


def count(store: Store, market: str, interval: str, symbol: str | None = None) -> int:
    query = (
        select(func.count())
        .select_from(StockPrice)
        .where(StockPrice.market == market, StockPrice.interval == interval)
    )
    if symbol is not None:
        query = query.where(StockPrice.symbol == symbol)
    with store.session() as session:
        return int(session.scalar(query) or 0)


def bars_sum(store: Store, market: str, interval: str) -> int:
    """The running fingerprint sum the store keeps for a market and interval."""
    with store.session() as session:
        value = session.scalar(
            select(Dataset.fingerprint).where(Dataset.name == f"bars:{market}:{interval}")
        )
    return int(value or "0", 16)


def assert_fingerprint_row_is_exact(store: Store, market: str, interval: str) -> None:
    frame = loader.read_price_frame(store, market, interval)
    assert bars_sum(store, market, interval) == loader.bar_hash_sum(frame)


def test_load_merges_never_deletes_bars(lab: Lab, tmp_path: Path) -> None:
    old = csv_file(
        tmp_path / "aapl2020.csv",
        "2020-01-02,AAPL,74.06,75.15,73.80,75.09,135480400",
        "2020-01-03,AAPL,74.29,75.14,74.13,74.36,146322800",
        "2020-01-06,AAPL,73.45,74.99,73.19,74.95,118387200",
    )
    result = lab.data.load(str(old), "us")
    assert (result.added, result.skipped, result.replaced, result.conflicts) == (3, 0, 0, ())
    assert count(lab.store, "us", "1d", "AAPL") == 103
    row = loader.list_datasets(lab.store).set_index("name").loc["us_daily"]
    assert row["rows"] == 10203 and row["first_ts"] == pd.Timestamp("2020-01-02")
    assert row["source"] == "us_daily, aapl2020"
    # init (load_shipped) keeps the user's bars.
    lab.data.load_shipped(["us_daily"])
    assert count(lab.store, "us", "1d", "AAPL") == 103
    assert_fingerprint_row_is_exact(lab.store, "us", "1d")


def test_identical_bars_are_skipped_and_new_ones_added(lab: Lab, tmp_path: Path) -> None:
    path = csv_file(
        tmp_path / "mixed.csv",
        row_of("AAPL", "2025-10-29", stored_bar(lab, "AAPL", "2025-10-29")),
        row_of("AAPL", "2025-10-30", stored_bar(lab, "AAPL", "2025-10-30")),
        "2025-10-31,AAPL,270.0,271.0,268.0,270.5,1000",
    )
    result = lab.data.load(str(path), "us")
    assert (result.added, result.skipped, result.replaced) == (1, 2, 0)
    assert count(lab.store, "us", "1d", "AAPL") == 101


def test_a_differing_bar_is_refused_with_a_report_and_nothing_loaded(
    lab: Lab, tmp_path: Path
) -> None:
    stored = stored_bar(lab, "AAPL", "2025-10-30")
    changed = (*stored[:3], stored[3] + 1.0, stored[4])
    path = csv_file(
        tmp_path / "fix.csv",
        "2025-10-31,AAPL,270.0,271.0,268.0,270.5,1000",
        row_of("AAPL", "2025-10-30", changed),
    )
    before = loader.read_price_frame(lab.store, "us", "1d")
    with pytest.raises(BarConflictError) as caught:
        lab.data.load(str(path), "us")
    message = str(caught.value)
    assert "1 bar(s) differ from the stored ones" in message and "--replace" in message
    assert f"AAPL 2025-10-30 00:00 (line 3): close stored {stored[3]:g}, new {changed[3]:g}" in (
        message
    )
    [conflict] = caught.value.result.conflicts
    assert (conflict.symbol, conflict.stored, conflict.new, conflict.line) == (
        "AAPL",
        stored,
        changed,
        3,
    )
    pd.testing.assert_frame_equal(loader.read_price_frame(lab.store, "us", "1d"), before)


def test_replace_overwrites_the_differing_bars_only(lab: Lab, tmp_path: Path) -> None:
    stored = stored_bar(lab, "AAPL", "2025-10-30")
    changed = (*stored[:3], stored[3] + 1.0, stored[4])
    path = csv_file(tmp_path / "fix.csv", row_of("AAPL", "2025-10-30", changed))
    result = lab.data.load(str(path), "us", replace=True)
    assert (result.added, result.skipped, result.replaced) == (0, 0, 1)
    assert stored_bar(lab, "AAPL", "2025-10-30") == changed
    assert count(lab.store, "us", "1d", "AAPL") == 100
    assert_fingerprint_row_is_exact(lab.store, "us", "1d")


def test_init_never_removes_or_changes_what_a_user_loaded(lab: Lab, tmp_path: Path) -> None:
    stored = stored_bar(lab, "MSFT", "2025-10-30")
    changed = (*stored[:3], stored[3] + 2.0, stored[4])
    replaced = csv_file(tmp_path / "a.csv", row_of("MSFT", "2025-10-30", changed))
    lab.data.load(str(replaced), "us", replace=True)
    added = csv_file(tmp_path / "b.csv", "2020-01-02,MSFT,158.8,160.7,158.3,160.6,1")
    lab.data.load(str(added), "us")
    lab.init()
    lab.data.load_shipped()
    assert stored_bar(lab, "MSFT", "2025-10-30") == changed
    assert count(lab.store, "us", "1d", "MSFT") == 101


def test_dataset_counts_are_derived_from_the_bars(lab: Lab, tmp_path: Path) -> None:
    lab.data.load(str(csv_file(tmp_path / "c.csv", "2020-01-02,ZZZZ,1.5,1.6,1.4,1.55,10")), "us")
    with lab.store.session() as session:  # and behind the lab's back
        session.execute(delete(StockPrice).where(StockPrice.symbol == "QQQ"))
    frame = loader.list_datasets(lab.store).set_index("name")
    for name, spec in SHIPPED.items():
        stored = loader.read_price_frame(lab.store, spec.market, spec.interval)
        row = frame.loc[name]
        assert row["rows"] == len(stored), name
        assert row["symbols"] == sorted(stored["symbol"].unique()), name
        assert row["first_ts"] == stored["ts"].min() and row["last_ts"] == stored["ts"].max()
    assert "ZZZZ" in frame.loc["us_daily", "symbols"]
    assert "QQQ" not in frame.loc["us_daily", "symbols"]


def test_the_data_fingerprint_changes_exactly_when_the_bars_change(
    lab: Lab, tmp_path: Path
) -> None:
    def fingerprint() -> str:
        return data_fingerprint(lab.store, "us", "1d")

    start = fingerprint()
    same = csv_file(
        tmp_path / "same.csv", row_of("AAPL", "2025-10-30", stored_bar(lab, "AAPL", "2025-10-30"))
    )
    lab.data.load(str(same), "us")  # identical bars under a new name
    lab.data.load(str(same), "us", name="again")
    lab.data.load_shipped(["us_daily", "us_hourly"])
    assert fingerprint() == start
    other = data_fingerprint(lab.store, "us", "60min")

    lab.data.load(str(csv_file(tmp_path / "new.csv", "2020-01-02,AAPL,1,2,0.5,1.5,1")), "us")
    added = fingerprint()
    assert added != start
    stored = stored_bar(lab, "AAPL", "2025-10-30")
    fixed = csv_file(
        tmp_path / "fixed.csv", row_of("AAPL", "2025-10-30", (*stored[:4], stored[4] + 1))
    )
    lab.data.load(str(fixed), "us", replace=True)
    replaced = fingerprint()
    assert replaced not in (start, added)
    assert data_fingerprint(lab.store, "us", "60min") == other  # another interval's bars
    assert_fingerprint_row_is_exact(lab.store, "us", "1d")


def test_the_cli_merges_and_refuses_conflicts_unless_replace(db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    path = csv_file(tmp_path / "x.csv", "2020-01-02,AAPL,74.06,75.15,73.80,75.09,135480400")
    ok = runner.invoke(main, ["--db", db_url, "data", "load", str(path), "--market", "us"])
    assert ok.exit_code == 0, ok.output
    assert "x (us 1d): 1 added, 0 identical skipped" in ok.output
    again = runner.invoke(main, ["--db", db_url, "data", "load", str(path), "--market", "us"])
    assert "0 added, 1 identical skipped" in again.output
    changed = csv_file(tmp_path / "x.csv", "2020-01-02,AAPL,74.06,75.15,73.80,74.5,135480400")
    refused = runner.invoke(main, ["--db", db_url, "data", "load", str(changed), "--market", "us"])
    assert refused.exit_code == 1
    assert "differ from the stored ones" in refused.output
    assert "close stored 75.09, new 74.5" in refused.output
    forced = runner.invoke(
        main, ["--db", db_url, "data", "load", str(changed), "--market", "us", "--replace"]
    )
    assert forced.exit_code == 0, forced.output
    assert "1 replaced" in forced.output and "close stored 75.09, new 74.5" in forced.output


def test_concurrent_loads_of_one_market_merge_without_loss(lab: Lab) -> None:
    """Two loads at once into the same market and interval: both land, the fingerprint
    row stays exact (the loads serialise on it)."""
    days = pd.bdate_range("2019-01-01", periods=60)

    def bars(symbol: str) -> ImportedBars:
        frame = pd.DataFrame(
            {"symbol": symbol, "ts": days, "open": 10.0, "high": 11.0, "low": 9.0}
        ).assign(close=10.5, volume=100.0)
        return ImportedBars(frame, "1d", f"thread {symbol}")

    errors: list[BaseException] = []

    def load(symbol: str) -> None:
        try:
            loader.load_bars(lab.store, f"t-{symbol}", "us", bars(symbol))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(s,)) for s in ("AAAA", "BBBB", "CCCC")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    for symbol in ("AAAA", "BBBB", "CCCC"):
        assert count(lab.store, "us", "1d", symbol) == 60
    assert_fingerprint_row_is_exact(lab.store, "us", "1d")


def test_init_restamps_a_store_holding_the_end_stamped_a_share_bars(empty_db_url: str) -> None:
    """A store loaded before bars carried their start holds cn_hourly stamped 10:30..15:00;
    init retires those bars (where unchanged) and merges the start-stamped ones."""
    store = Store(empty_db_url)
    store.migrate()
    try:
        new = read_shipped("cn_hourly", DATA_DIR)
        [old] = SHIPPED["cn_hourly"].earlier_builds(new)
        edited = old.copy()
        mine = int(edited.index[edited["ts"].dt.hour == 15][0])  # no new bar at 15:00
        edited.loc[mine, "close"] = float(edited.loc[mine, "close"]) + 0.01  # a user's change
        with store.session() as session:
            session.execute(
                insert(StockPrice),
                [{"market": "cn", "interval": "60min", **r} for r in edited.to_dict("records")],
            )
            session.add(
                Dataset(
                    name="cn_hourly",
                    market="cn",
                    interval="60min",
                    source="shipped:cn_hourly",
                    fingerprint=loader.fingerprint(old),
                    rows=len(old),
                    symbols=sorted(old["symbol"].unique()),
                    first_ts=old["ts"].min().to_pydatetime(),
                    last_ts=old["ts"].max().to_pydatetime(),
                )
            )
        assert loader.load_shipped(store, DATA_DIR, ["cn_hourly"]) == {"cn_hourly": 6000}
        stored = loader.read_price_frame(store, "cn", "60min")
        kept = edited.loc[[mine]]
        expected = pd.concat([new, kept]).sort_values(["symbol", "ts"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
        assert_fingerprint_row_is_exact(store, "cn", "60min")
        assert loader.load_shipped(store, DATA_DIR, ["cn_hourly"]) == {"cn_hourly": 0}
    finally:
        store.dispose()


def test_a_load_name_keeps_to_one_market_and_interval(lab: Lab, tmp_path: Path) -> None:
    """A load's row is part of its market's data fingerprint: the name cannot move."""
    path = csv_file(tmp_path / "mine.csv", "2020-01-02,AAPL,74.06,75.15,73.80,75.09,1")
    lab.data.load(str(path), "us")
    coin = csv_file(tmp_path / "coin.csv", "2020-01-02,BTC-USDT,7000,7200,6900,7100,1")
    with pytest.raises(ValidationError, match="'mine' holds us 1d bars"):
        lab.data.load(str(coin), "crypto", name="mine")
    assert count(lab.store, "crypto", "1d", "BTC-USDT") == 355
