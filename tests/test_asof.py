"""Look-ahead: every read path refuses what the clock does not know yet."""

from __future__ import annotations

from datetime import datetime

import pytest

from ttg_lab.broker.costs import COST_PRESETS
from ttg_lab.broker.portfolio import Portfolio
from ttg_lab.engine.context import RunContext
from ttg_lab.errors import LookAheadError, NotFoundError
from ttg_lab.lab import Lab
from ttg_lab.market.asof import AsOfView, PriceIndex
from ttg_lab.market.cache import data_fingerprint, price_index
from ttg_lab.market.markets import get_market
from ttg_lab.tools import account, price

DAY = datetime(2025, 7, 15)


@pytest.fixture()
def daily(lab: Lab) -> PriceIndex:
    return price_index(lab.store, "us", "1d", data_fingerprint(lab.store, "us", "1d"))


@pytest.fixture()
def hourly(lab: Lab) -> PriceIndex:
    return price_index(lab.store, "us", "60min", data_fingerprint(lab.store, "us", "60min"))


def make_ctx(index: PriceIndex, clock: datetime) -> RunContext:
    ctx = RunContext(
        run_id=0,
        market=get_market("us"),
        index=index,
        tickers=frozenset(index.symbols),
        portfolio=Portfolio(10_000.0, {"AAPL": 3.0}),
        costs=COST_PRESETS["zero"],
    )
    ctx.advance(0, clock)
    return ctx


@pytest.mark.parametrize("field", ["high", "low", "close", "volume"])
def test_same_day_fields_other_than_open_are_refused(daily: PriceIndex, field: str) -> None:
    view = AsOfView(daily, DAY)
    with pytest.raises(LookAheadError) as err:
        view.value("AAPL", DAY, field)
    assert "AAPL" in str(err.value) and "2025-07-15" in str(err.value) and field in str(err.value)


def test_today_open_and_the_past_are_visible(daily: PriceIndex) -> None:
    view = AsOfView(daily, DAY)
    bars = daily.bars("AAPL")
    i = bars.ts.index(DAY)
    assert view.open("AAPL") == bars.open[i]
    assert view.value("AAPL", DAY, "open") == bars.open[i]
    assert view.value("AAPL", bars.ts[i - 1], "close") == bars.close[i - 1]
    assert view.last_close("AAPL") == bars.close[i - 1]


def test_future_is_refused_on_every_path(daily: PriceIndex) -> None:
    view = AsOfView(daily, DAY)
    later = datetime(2025, 7, 16)
    with pytest.raises(LookAheadError):
        view.value("AAPL", later, "open")
    with pytest.raises(LookAheadError):
        view.history_until("AAPL", later)
    ctx = make_ctx(daily, DAY)
    with pytest.raises(LookAheadError):
        price.get_price_local(ctx, "AAPL", "2025-07-16")
    with pytest.raises(LookAheadError):
        price.get_price_local(ctx, "AAPL", "2025-10-30")


def test_history_stops_before_the_clock(daily: PriceIndex) -> None:
    view = AsOfView(daily, DAY)
    history = view.history("AAPL")
    assert history["ts"].max() < DAY
    assert len(view.closes("AAPL", 1000)) == len(history)
    tool = price.get_price_history(make_ctx(daily, DAY), "AAPL", 5)
    assert [b["time"] for b in tool["bars"]][-1] == "2025-07-14"


def test_price_tool_today_gives_only_the_open(daily: PriceIndex) -> None:
    answer = price.get_price_local(make_ctx(daily, DAY), "aapl", "2025-07-15")
    assert set(answer) == {"symbol", "time", "open"}
    assert answer["symbol"] == "AAPL"


def test_portfolio_tool_values_with_known_prices_only(daily: PriceIndex) -> None:
    ctx = make_ctx(daily, DAY)
    answer = account.get_portfolio(ctx)
    bars = daily.bars("AAPL")
    assert answer["positions"][0]["price"] == bars.open[bars.ts.index(DAY)]


def test_intraday_sees_earlier_bars_and_the_current_open(hourly: PriceIndex) -> None:
    clock = datetime(2025, 10, 2, 12, 0)
    view = AsOfView(hourly, clock)
    assert view.value("AAPL", datetime(2025, 10, 2, 11, 0), "close") is not None
    assert view.open("AAPL") is not None
    with pytest.raises(LookAheadError):
        view.value("AAPL", clock, "close")
    with pytest.raises(LookAheadError):
        view.value("AAPL", datetime(2025, 10, 2, 13, 0), "open")
    assert view.history("AAPL")["ts"].max() == datetime(2025, 10, 2, 11, 0)


def test_unknown_symbol_is_a_clear_error(daily: PriceIndex) -> None:
    with pytest.raises(NotFoundError, match="ZZZZ"):
        AsOfView(daily, DAY).value("ZZZZ", datetime(2025, 7, 1))
