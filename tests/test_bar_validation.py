"""Odd input is refused with the reason, naming the file and line, and nothing is stored:
bars that cannot be real bars of their market, news links that are not web pages, names
and text with NUL or control characters, absurd AI-Trader lines.

Store tests run on SQLite and PostgreSQL (``lab``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ttg_lab.errors import DataFileError, ValidationError
from ttg_lab.importers.aitrader import import_aitrader
from ttg_lab.lab import Lab
from ttg_lab.market import loader
from ttg_lab.market.importers import read_aitrader_merged_jsonl, read_csv_bars
from ttg_lab.news.importers import read_alphavantage_news, read_news_jsonl
from ttg_lab.store.schema import ModelRule, NewsItem, StockPrice, TradingModel

HEADER = "date,symbol,open,high,low,close,volume\n"
GOOD = "2025-10-31,AAPL,270.0,271.0,268.0,270.5,1000"
FIXTURES = Path(__file__).parent / "fixtures"


def bar_count(lab: Lab) -> int:
    with lab.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(StockPrice)) or 0)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def odd(case: str, market: str, row: str, message: str) -> object:
    return pytest.param(market, row, message, id=case)


ODD_BARS = [
    odd("5000-chars", "us", "2025-10-31," + "A" * 5000 + ",1,2,0.5,1.5,10", "not a us symbol"),
    odd("lowercase", "us", "2025-10-31,aapl,270,271,268,270.5,10", "'aapl' is not a us symbol"),
    odd("cn-no-exchange", "cn", "2025-10-31,600519,1400,1410,1390,1405,10", "not a cn symbol"),
    odd("1e300-price", "us", "2025-10-31,AAPL,1e300,1e300,1e300,1e300,10", "outside the plaus"),
    odd("1e300-volume", "us", "2025-10-31,AAPL,270,271,268,270.5,1e300", r"volume 1e\+300 is"),
    odd("saturday", "us", "2025-10-04,AAPL,270,271,268,270.5,10", "not trade on a Saturday"),
    odd("cn-sunday", "cn", "2025-10-05,600519.SH,1400,1410,1390,1405,10", "trade on a Sunday"),
    odd("2099", "us", "2099-01-02,AAPL,270,271,268,270.5,10", "a day after today"),
    odd("1850", "us", "1850-01-02,AAPL,270,271,268,270.5,10", "before 1900"),
    odd("us-3am", "us", "2025-10-31 03:00,AAPL,270,271,268,270.5,10", "outside the us sessions"),
    odd("us-16h", "us", "2025-10-31 16:00,AAPL,270,271,268,270.5,10", "outside the us sessions"),
    odd("cn-lunch", "cn", "2025-10-31 12:00,600519.SH,1400,1410,1390,1405,10", "13:00-15:00"),
    odd("seconds", "us", "2025-10-31 10:00:30,AAPL,270,271,268,270.5,10", "starts outside"),
    odd("2099-hourly", "us", "2099-01-02 10:00,AAPL,270,271,268,270.5,10", "starts after now"),
]


@pytest.mark.parametrize(("market", "row", "message"), ODD_BARS)
def test_an_odd_bar_is_refused_naming_file_and_line(
    lab: Lab, tmp_path: Path, market: str, row: str, message: str
) -> None:
    path = write(tmp_path / "odd.csv", HEADER + row + "\n")
    before = bar_count(lab)
    with pytest.raises(DataFileError, match=message) as caught:
        lab.data.load(str(path), market)
    assert (caught.value.path, caught.value.line) == (str(path), 2)
    assert bar_count(lab) == before


def test_crypto_trades_every_day_and_all_day(lab: Lab, tmp_path: Path) -> None:
    saturday = write(tmp_path / "sat.csv", HEADER + "2025-11-22,BTC-USDT,1e5,1.1e5,9e4,1.05e5,1\n")
    assert lab.data.load(str(saturday), "crypto").added == 1
    night = write(tmp_path / "night.csv", HEADER + "2025-11-01 03:00,BTC-USDT,1e5,1e5,1e5,1e5,1\n")
    assert lab.data.load(str(night), "crypto").added == 1


def test_mixed_daily_and_hourly_stamps_are_refused(lab: Lab, tmp_path: Path) -> None:
    path = write(
        tmp_path / "mixed.csv",
        HEADER + "2025-10-31 10:00,AAPL,270,271,268,270.5,10\n2025-10-30,AAPL,270,271,268,270,1\n",
    )
    before = bar_count(lab)
    with pytest.raises(DataFileError, match="no time of day: a daily bar among 60min") as caught:
        lab.data.load(str(path), "us")
    assert caught.value.line == 3
    assert bar_count(lab) == before


def test_bars_closer_than_their_interval_are_refused(lab: Lab, tmp_path: Path) -> None:
    rows = "2025-10-31 10:00,AAPL,270,271,268,270.5,10\n2025-10-31 10:30,AAPL,270,271,268,270,1\n"
    path = write(tmp_path / "overlap.csv", HEADER + rows)
    with pytest.raises(DataFileError, match="starts inside the 60min bar of 2025-10-31 10:00"):
        lab.data.load(str(path), "us")


def test_end_labelled_a_share_bars_need_the_end_convention(lab: Lab, tmp_path: Path) -> None:
    """AI-Trader's A-share hourly file labels bars 10:30..15:00 by their end: read as
    starts, its 15:00 bars fall outside the sessions and the load says how to fix it."""
    csv = FIXTURES / "market" / "A_stock_hourly.csv"
    with pytest.raises(DataFileError, match="load it with the 'end' label convention") as caught:
        lab.data.load(str(csv), "cn")
    assert caught.value.line == 4  # 600028.SH at 11:30: the morning session has ended
    result = lab.data.load(str(csv), "cn", label="end")
    assert (result.added, result.skipped) == (0, 8)  # the shipped bars, stamped by their start


def test_alpha_vantage_and_jsonl_bars_are_checked_too(lab: Lab, tmp_path: Path) -> None:
    daily = json.loads((FIXTURES / "market" / "daily_prices_AAPL.json").read_text("utf-8"))
    series = daily["Time Series (Daily)"]
    series["2025-10-25"] = series["2025-10-24"]  # a Saturday
    path = write(tmp_path / "av.json", json.dumps(daily, indent=4))
    line = next(
        n for n, text in enumerate(path.read_text("utf-8").splitlines(), 1) if "2025-10-25" in text
    )
    with pytest.raises(DataFileError, match="does not trade on a Saturday") as caught:
        lab.data.load(str(path), "us")
    assert caught.value.line == line
    daily["Meta Data"]["2. Symbol"] = "aapl"
    del series["2025-10-25"]
    with pytest.raises(DataFileError, match="'aapl' is not a us symbol"):
        lab.data.load(str(write(tmp_path / "lower.json", json.dumps(daily))), "us")
    merged = (FIXTURES / "market" / "merged.jsonl").read_text("utf-8").splitlines()
    saturday = merged[1].replace("2025-10-24", "2025-10-25")
    path = write(tmp_path / "m.jsonl", "\n".join([merged[0], saturday]) + "\n")
    bars = read_aitrader_merged_jsonl(path, partial="skip")
    with pytest.raises(DataFileError, match="ABNB 2025-10-25 00:00: the us market") as caught:
        loader.load_bars(lab.store, "m", "us", bars)
    assert caught.value.line == 2


def test_a_dataset_name_with_control_characters_is_refused(lab: Lab, tmp_path: Path) -> None:
    path = write(tmp_path / "ok.csv", HEADER + GOOD + "\n")
    for name in ("a\x00b", "tab\there", "bars:us:1d", "news:x", "x" * 101):
        with pytest.raises(ValidationError):
            lab.data.load(str(path), "us", name=name)
    assert read_csv_bars(path).symbols == ["AAPL"]


# --- news -------------------------------------------------------------------------------

BAD_URLS = [
    "javascript:alert(document.cookie)",
    "JavaScript://example.com/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "file:///etc/passwd",
    "http://",
    "https://exa mple.com/a",
    "https://example.com/\x00a",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_news_link_that_is_not_a_web_page_is_refused(lab: Lab, tmp_path: Path, url: str) -> None:
    record = {"url": url, "title": "Apple", "published_at": "2025-10-14T21:18:02Z"}
    good = {"url": "https://example.com/ok", "title": "ok", "published_at": "2025-10-14T21:00Z"}
    path = write(tmp_path / "news.jsonl", json.dumps(good) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DataFileError) as caught:
        read_news_jsonl(path)
    assert caught.value.line == 2 and "URL" in str(caught.value)
    with lab.store.session() as session:
        before = session.scalar(select(func.count()).select_from(NewsItem))
    with pytest.raises(DataFileError):
        lab.data.load_news(str(path))
    with lab.store.session() as session:
        assert session.scalar(select(func.count()).select_from(NewsItem)) == before
    feed = {"feed": [{"url": url, "title": "t", "time_published": "20251014T211802"}]}
    with pytest.raises(DataFileError, match="feed item 0: no usable http"):
        read_alphavantage_news(write(tmp_path / "av.json", json.dumps(feed)))


def test_news_text_with_nul_is_stored_without_it(lab: Lab, tmp_path: Path) -> None:
    record = {
        "url": "https://example.com/nul",
        "title": "Apple\x00 beats",
        "summary": "a\x00b",
        "published_at": "2025-10-14T21:18:02Z",
        "symbols": ["AAPL\x00"],
    }
    path = write(tmp_path / "nul.jsonl", json.dumps(record) + "\n")
    assert lab.data.load_news(str(path)) == 1
    with lab.store.session() as session:
        item = session.scalars(select(NewsItem).where(NewsItem.url == record["url"])).one()
        assert (item.title, item.summary, item.symbols) == ("Apple beats", "ab", ["AAPL"])


# --- names ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["evil\x00name", "two\nlines", "bell\x07"])
def test_a_model_name_with_control_characters_is_refused(lab: Lab, name: str) -> None:
    with lab.store.session() as session:
        before = session.scalar(select(func.count()).select_from(TradingModel))
    with pytest.raises(ValidationError, match="control character"):
        lab.models.create(name)
    model = lab.models.create("fine")
    with pytest.raises(ValidationError, match="control character"):
        lab.models.update(model, name=name)
    with pytest.raises(ValidationError, match="control character"):
        lab.models.update(model, custom_instructions="be \x00 careful")
    with lab.store.session() as session:
        assert session.scalar(select(func.count()).select_from(TradingModel)) == before + 1
    assert lab.models.get(model.id).name == "fine"


def test_a_rule_name_or_description_with_nul_is_refused(lab: Lab) -> None:
    model = lab.models.create("ruled")
    with pytest.raises(ValidationError, match="control character"):
        lab.rules.add(model, "cap\x00", {"max_position_pct": 10})
    with pytest.raises(ValidationError, match="control character"):
        lab.rules.add(model, "cap", {"max_position_pct": 10}, description="x\x00")
    with lab.store.session() as session:
        assert session.scalar(select(func.count()).select_from(ModelRule)) == 0


# --- AI-Trader runs ---------------------------------------------------------------------

MODEL_DIR = FIXTURES / "aitrader" / "agent_data_crypto" / "gpt-5"


def edited_copy(tmp_path: Path, line: int, change: dict[str, object]) -> Path:
    folder = tmp_path / "agent_data_crypto" / "gpt-5"
    shutil.copytree(MODEL_DIR, folder)
    path = folder / "position" / "position.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    data = json.loads(lines[line - 1])
    for key, value in change.items():
        if key == "symbol":
            data["this_action"]["symbol"] = value
        elif key == "amount":
            data["this_action"]["amount"] = value
        else:
            data[key] = value
    lines[line - 1] = json.dumps(data)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"symbol": "X" * 5000}, "is not a symbol"),
        ({"symbol": "BTC\x00-USDT"}, "is not a symbol"),
        ({"amount": 1e300}, r"amount 1e\+300 is implausible"),
        ({"date": "2099-11-02"}, "is in the future"),
    ],
    ids=["5000-chars", "nul", "1e300", "2099"],
)
def test_an_absurd_aitrader_line_is_refused_naming_file_and_line(
    lab: Lab, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    folder = edited_copy(tmp_path, 5, change)
    with pytest.raises(DataFileError, match=message) as caught:
        import_aitrader(lab.store, folder, owner_id=lab.user.id)
    assert caught.value.line == 5 and caught.value.path.endswith("position.jsonl")


def test_an_aitrader_log_message_with_nul_is_refused(lab: Lab, tmp_path: Path) -> None:
    folder = tmp_path / "agent_data_crypto" / "gpt-5"
    shutil.copytree(MODEL_DIR, folder)
    log = next(folder.glob("log/*/log.jsonl"))
    record = {"signature": "gpt-5", "new_messages": [{"role": "assistant", "content": "a\x00"}]}
    log.write_text(log.read_text("utf-8") + json.dumps(record) + "\n", encoding="utf-8")
    lines = len(log.read_text("utf-8").splitlines())
    with pytest.raises(DataFileError, match="contains a NUL character") as caught:
        import_aitrader(lab.store, folder, owner_id=lab.user.id)
    assert caught.value.line == lines
