"""Loader and shipped data: idempotent, all-or-nothing loads; the shipped Parquet files.

Store tests run on SQLite and PostgreSQL (``empty_db_url``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import delete, func, select

from ttg_lab.errors import DataFileError, NotFoundError
from ttg_lab.market import loader
from ttg_lab.market.bars import BAR_COLUMNS, ImportedBars
from ttg_lab.market.importers import read_alpha_vantage_json, read_csv_bars
from ttg_lab.market.shipped import SHIPPED, read_shipped, shipped_path
from ttg_lab.news.items import News
from ttg_lab.news.store import load_news
from ttg_lab.store.database import Store
from ttg_lab.store.schema import Dataset, NewsItem, StockPrice

FIXTURES = Path(__file__).parent / "fixtures" / "market"
DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def store(empty_db_url: str) -> Iterator[Store]:
    db = Store(empty_db_url)
    db.migrate()
    yield db
    db.dispose()


def count_rows(store: Store) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(StockPrice)) or 0)


def test_load_file_and_read_back(store: Store) -> None:
    result = loader.load_file(store, FIXTURES / "daily_prices_AAPL.json", "us")
    assert (result.added, result.skipped, result.conflicts) == (10, 0, ())
    frame = loader.read_price_frame(store, "us", "1d")
    expected = read_alpha_vantage_json(FIXTURES / "daily_prices_AAPL.json").frame
    pd.testing.assert_frame_equal(frame, expected)
    datasets = loader.list_datasets(store)
    assert datasets["name"].tolist() == ["us_daily"]
    row = datasets.iloc[0]
    assert (row["market"], row["interval"], row["rows"]) == ("us", "1d", 10)
    assert row["symbols"] == ["AAPL"] and row["source"] == "daily_prices_AAPL"
    assert row["first_ts"] == pd.Timestamp("2025-10-17")
    assert row["last_ts"] == pd.Timestamp("2025-10-30")
    [load] = loader.list_loads(store).to_dict("records")
    assert (load["name"], load["rows"]) == ("daily_prices_AAPL", 10)
    assert load["fingerprint"] == loader.fingerprint(expected)


def test_read_price_frame_filters(store: Store) -> None:
    loader.load_file(store, FIXTURES / "A_stock_hourly.csv", "cn", name="cn_h", label="end")
    frame = loader.read_price_frame(
        store,
        "cn",
        "60min",
        symbols=["600519.SH"],
        start="2025-10-09 10:30",
        end="2025-10-09 13:00",
    )
    assert list(frame.columns) == BAR_COLUMNS
    assert frame["ts"].dtype == "datetime64[ns]"
    assert frame["ts"].tolist() == [
        pd.Timestamp("2025-10-09 10:30"),
        pd.Timestamp("2025-10-09 13:00"),
    ]
    assert frame["close"].tolist() == [1427.92, 1436.2]
    empty = loader.read_price_frame(store, "cn", "1d")
    assert empty.empty and list(empty.columns) == BAR_COLUMNS


def test_reload_is_idempotent(store: Store) -> None:
    path = FIXTURES / "hourly_prices_AAPL.json"
    assert loader.load_file(store, path, "us", name="aapl").added == 12
    first = loader.list_datasets(store)
    again = loader.load_file(store, path, "us", name="aapl")
    assert (again.added, again.skipped, again.changed) == (0, 12, False)
    assert count_rows(store) == 12
    second = loader.list_datasets(store)
    assert len(second) == 1
    pd.testing.assert_frame_equal(second, first)


def test_a_load_of_fewer_bars_keeps_the_others(store: Store) -> None:
    path = FIXTURES / "daily_prices_AAPL.json"
    loader.load_file(store, path, "us", name="aapl")
    bars = read_alpha_vantage_json(path)
    fewer = ImportedBars(bars.frame.iloc[:3].copy(), "1d", "three days")
    result = loader.load_bars(store, "aapl", "us", fewer)
    assert (result.added, result.skipped) == (0, 3)
    assert count_rows(store) == 10
    # Another market's bars of the same symbol are another dataset.
    assert loader.load_bars(store, "aapl-crypto", "crypto", bars).added == 10
    assert count_rows(store) == 20


def test_failed_load_leaves_previous_rows(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    path = FIXTURES / "daily_prices_AAPL.json"
    loader.load_file(store, path, "us", name="aapl")
    before = loader.read_price_frame(store, "us", "1d")
    before_sets = loader.list_datasets(store)
    before_loads = loader.list_loads(store)

    def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(loader, "_record_load", boom)
    bars = read_alpha_vantage_json(path)
    changed = bars.frame.copy()
    changed["close"] = changed["open"]
    with pytest.raises(RuntimeError, match="disk full"):
        loader.load_bars(store, "aapl", "us", ImportedBars(changed, "1d", "changed"), replace=True)
    pd.testing.assert_frame_equal(loader.read_price_frame(store, "us", "1d"), before)
    pd.testing.assert_frame_equal(loader.list_datasets(store), before_sets)
    pd.testing.assert_frame_equal(loader.list_loads(store), before_loads)


def test_broken_file_loads_nothing(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    text = (FIXTURES / "A_stock_hourly.csv").read_text(encoding="utf-8")
    path.write_text(text.replace(",7750\n", ",-7750\n"), encoding="utf-8")
    with pytest.raises(DataFileError) as excinfo:
        loader.load_file(store, path, "cn", label="end")
    assert excinfo.value.line == 9
    assert count_rows(store) == 0
    assert loader.list_datasets(store).empty


def test_unknown_market_is_refused(store: Store) -> None:
    with pytest.raises(NotFoundError, match="unknown market"):
        loader.load_file(store, FIXTURES / "daily_prices_AAPL.json", "eu")


def test_fingerprint_is_stable() -> None:
    frame = read_csv_bars(FIXTURES / "A_stock_hourly.csv").frame
    digest = loader.fingerprint(frame)
    assert len(digest) == 64
    # Row order and index do not matter; the values do.
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    assert loader.fingerprint(shuffled) == digest
    assert loader.fingerprint(frame.set_index(frame.index + 100)) == digest
    changed = frame.copy()
    changed.loc[0, "volume"] = float(changed["volume"].iloc[0]) + 1
    assert loader.fingerprint(changed) != digest
    # Pinned: the serialisation must not drift between runs, versions or platforms.
    assert digest == EXPECTED_CSV_FINGERPRINT


EXPECTED_CSV_FINGERPRINT = "3f09421b9769291b9f89e7b9bc64cc365eb26744aa426f499ac5f877988b79a2"


# --- shipped data ---------------------------------------------------------------------------


def test_shipped_catalogue() -> None:
    assert set(SHIPPED) == {"us_daily", "us_hourly", "cn_daily", "cn_hourly", "crypto_daily"}
    for name, spec in SHIPPED.items():
        assert spec.name == name
        assert shipped_path(name, DATA_DIR) == DATA_DIR / "market" / f"{name}.parquet"
        assert shipped_path(name, DATA_DIR / "market") == DATA_DIR / "market" / f"{name}.parquet"
    with pytest.raises(NotFoundError):
        read_shipped("eu_daily", DATA_DIR)


@pytest.mark.parametrize(
    ("name", "symbols", "rows", "first", "last", "per_symbol"),
    [
        ("us_daily", 102, 10200, "2025-06-10", "2025-10-30", {100}),
        ("us_hourly", 102, 17748, "2025-10-01 10:00", "2025-11-10 15:00", {174}),
        ("cn_daily", 51, 5533, "2025-06-11", "2025-11-18", {99, 103, 105, 108, 109}),
        ("cn_hourly", 50, 6000, "2025-10-09 09:30", "2025-11-19 14:00", {120}),
        ("crypto_daily", 11, 3565, "2024-11-26", "2025-11-15", {15, 355}),
    ],
)
def test_read_shipped(
    name: str, symbols: int, rows: int, first: str, last: str, per_symbol: set[int]
) -> None:
    frame = read_shipped(name, DATA_DIR)
    assert list(frame.columns) == BAR_COLUMNS
    assert frame["ts"].dtype == "datetime64[ns]"
    assert frame["symbol"].nunique() == symbols
    assert len(frame) == rows
    assert frame["ts"].min() == pd.Timestamp(first)
    assert frame["ts"].max() == pd.Timestamp(last)
    assert set(frame.groupby("symbol").size()) == per_symbol


def test_shipped_symbols_and_benchmarks() -> None:
    us = read_shipped("us_daily", DATA_DIR)
    assert {"QQQ", "AAPL", "GOOG", "GOOGL", "META"} <= set(us["symbol"])
    assert "FB" not in set(us["symbol"])
    assert us["ts"].nunique() == 100
    qqq = us[us["symbol"] == "QQQ"]
    assert len(qqq) == 100
    cn = read_shipped("cn_daily", DATA_DIR)
    assert "000016.SH" in set(cn["symbol"])
    assert all(s.endswith(".SH") for s in cn["symbol"])
    # The corrupt per-symbol bar of 600519.SH on 2025-11-06 is replaced by merged.jsonl's.
    moutai = cn[(cn["symbol"] == "600519.SH") & (cn["ts"] == pd.Timestamp("2025-11-06"))]
    assert moutai[["open", "high", "low", "close"]].iloc[0].tolist() == [
        1430.0,
        1441.45,
        1429.99,
        1435.13,
    ]
    crypto = read_shipped("crypto_daily", DATA_DIR)
    assert set(crypto["symbol"]) == {
        "CD5",
        *(f"{c}-USDT" for c in ("BTC", "ETH", "XRP", "SOL", "ADA", "SUI", "LINK", "AVAX")),
        "LTC-USDT",
        "DOT-USDT",
    }
    cd5 = crypto[crypto["symbol"] == "CD5"]
    assert (cd5["high"] == cd5[["open", "close"]].max(axis=1)).all()
    assert (cd5["low"] == cd5[["open", "close"]].min(axis=1)).all()


def test_load_shipped_is_idempotent(store: Store) -> None:
    loaded = loader.load_shipped(store, DATA_DIR, ["cn_hourly", "crypto_daily"])
    assert loaded == {"cn_hourly": 6000, "crypto_daily": 3565}
    assert loader.load_shipped(store, DATA_DIR, ["cn_hourly", "crypto_daily"]) == {
        "cn_hourly": 0,
        "crypto_daily": 0,
    }
    assert count_rows(store) == 9565
    loads = loader.list_loads(store).set_index("name")
    assert loads.loc["crypto_daily", "fingerprint"] == loader.fingerprint(
        read_shipped("crypto_daily", DATA_DIR)
    )
    # Bars deleted behind the store's back are restored, and only those.
    with store.session() as session:
        session.execute(
            delete(StockPrice).where(StockPrice.market == "cn", StockPrice.symbol == "600519.SH")
        )
    assert loader.load_shipped(store, DATA_DIR, ["cn_hourly"]) == {"cn_hourly": 120}
    assert count_rows(store) == 9565
    with pytest.raises(NotFoundError):
        loader.load_shipped(store, DATA_DIR, ["nope"])


def test_holds_data_answers_as_the_dataset_list_does(store: Store) -> None:
    """``ttg_lab.open`` asks whether to load the shipped data without summarising every
    bar: the answer is the dataset list's, for an empty store, news only, and bars."""
    assert not loader.holds_data(store) and loader.list_datasets(store).empty
    item = News(
        source="wire",
        url="https://x.test/1",
        title="t",
        summary="s",
        content="c",
        published_at=datetime(2025, 6, 10),
    )
    load_news(store, [item], "wire")
    assert loader.holds_data(store) and not loader.list_datasets(store).empty
    with store.session() as session:
        session.execute(delete(Dataset))
        session.execute(delete(NewsItem))
    assert not loader.holds_data(store) and loader.list_datasets(store).empty
    loader.load_file(store, FIXTURES / "daily_prices_AAPL.json", "us")
    assert loader.holds_data(store) and not loader.list_datasets(store).empty
