"""Look-ahead in the data itself: every stored bar carries its start.

For every shipped intraday dataset the intraday bars are compared with the day's bars
(a bar stamped by its end opens at the day's open although stamped an hour later);
then an agent that records everything its tools return runs on an A-share and a US
intraday period and must have seen no price and no news later than the bar's start,
except the current bar's open; and AI-Trader's A-share hourly runs, booked at bar
starts, still reproduce AI-Trader's own cash to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest

from ttg_lab.agents.policy import Decision, Order, Policy, register_policy
from ttg_lab.engine.context import RunContext
from ttg_lab.errors import DataFileError, LookAheadError
from ttg_lab.importers.aitrader import import_sources
from ttg_lab.importers.shipped_runs import read_shipped_runs, shipped_runs_path
from ttg_lab.lab import Lab
from ttg_lab.market import loader
from ttg_lab.market.bars import INTRADAY_MINUTES, ImportedBars
from ttg_lab.market.checks import check_market_bars, compare_with_daily
from ttg_lab.market.markets import MARKETS
from ttg_lab.market.shipped import SHIPPED, read_shipped
from ttg_lab.news import store as news_store
from ttg_lab.news.items import make_news
from ttg_lab.tools import account, price, search

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
INTRADAY = [name for name, spec in SHIPPED.items() if spec.interval in INTRADAY_MINUTES]


@pytest.mark.parametrize("name", INTRADAY)
def test_every_shipped_intraday_dataset_is_stamped_by_bar_start(name: str) -> None:
    spec = SHIPPED[name]
    market = MARKETS[spec.market]
    bars = read_shipped(name, DATA_DIR)
    daily = read_shipped(f"{spec.market}_daily", DATA_DIR)
    check_market_bars(ImportedBars(bars, spec.interval, name), market)  # inside the sessions
    check = compare_with_daily(bars, daily, market, spec.interval)
    fields = {m.field for m in check.mismatches}
    assert check.checks > 2 * bars["ts"].dt.normalize().nunique()  # open and close checked
    assert check.share < 0.15, check.summary()
    assert "late open" not in fields or sum(m.field == "late open" for m in check.mismatches) < 5
    # The same bars stamped one interval later (by their end) are caught: bars outside the
    # sessions are refused, and A-share bars that stay inside open at the day's open an
    # hour after it on most days.
    late = bars.assign(ts=bars["ts"] + pd.Timedelta(minutes=INTRADAY_MINUTES[spec.interval]))
    outside = [market.segment_of(t) is None for t in late["ts"]]
    assert any(outside)
    with pytest.raises(DataFileError, match="starts outside"):
        check_market_bars(ImportedBars(late, spec.interval, name), market)
    kept = late[[not o for o in outside]]
    if spec.market == "cn":
        assert compare_with_daily(kept, daily, market, spec.interval).systematic


def test_a_share_bars_open_at_the_day_open_only_at_09_30() -> None:
    bars = read_shipped("cn_hourly", DATA_DIR)
    daily = read_shipped("cn_daily", DATA_DIR).set_index(["symbol", "ts"])
    first = bars.sort_values("ts").groupby(["symbol", bars["ts"].dt.normalize()]).first()
    assert set(first["ts"].dt.strftime("%H:%M")) == {"09:30"}
    assert sorted(set(bars["ts"].dt.strftime("%H:%M"))) == ["09:30", "10:30", "13:00", "14:00"]
    moutai = first.loc["600519.SH"]
    day_opens = daily.loc["600519.SH"]["open"]
    days = [d for d in moutai.index if d in day_opens.index]  # cn_daily ends 2025-11-18
    assert len(days) == 29
    assert all(float(moutai.loc[d, "open"]) == float(day_opens.loc[d]) for d in days)


# --- an agent that records everything it is shown ------------------------------------------


@dataclass
class Seen:
    """What the probe saw at one step."""

    clock: datetime
    decision_utc: datetime
    open_now: float | None
    now_fields: set[str]
    history: list[dict[str, Any]]
    previous_bar: dict[str, Any] | None
    future_refused: bool
    close_now_refused: bool
    news: list[str] = field(default_factory=list)
    portfolio_prices: list[float] = field(default_factory=list)


class Probe(Policy):
    """Calls every read tool at every step and keeps the answers; buys once."""

    name: ClassVar[str] = "probe"
    description: ClassVar[str] = "records what the tools show"
    seen: ClassVar[list[Seen]] = []
    quantity: ClassVar[float] = 0

    def step(self, ctx: RunContext) -> Decision:
        symbol = sorted(ctx.tickers)[0]
        now = price.get_price_local(ctx, symbol)
        history = price.get_price_history(ctx, symbol, 1000)["bars"]
        previous = None
        if history:
            previous = price.get_price_local(ctx, symbol, history[-1]["time"])
        later = ctx.clock + timedelta(minutes=30)
        future_refused = close_refused = False
        try:
            price.get_price_local(ctx, symbol, f"{later:%Y-%m-%d %H:%M}")
        except LookAheadError:
            future_refused = True
        try:
            ctx.view.value(symbol, ctx.clock, "close")
        except LookAheadError:
            close_refused = True
        answer = search.get_information(ctx, f"probe{ctx.step_index} {symbol}")
        record = Seen(
            clock=ctx.clock,
            decision_utc=ctx.market.to_utc(ctx.clock),
            open_now=now.get("open"),
            now_fields=set(now) - {"symbol", "time"},
            history=history,
            previous_bar=previous,
            future_refused=future_refused,
            close_now_refused=close_refused,
            news=[hit["published_at"] for hit in answer["results"]],
            portfolio_prices=[p["price"] for p in account.get_portfolio(ctx)["positions"]],
        )
        Probe.seen.append(record)
        orders = [Order("buy", symbol, self.quantity)] if ctx.step_index == 0 else []
        return Decision(orders=orders, analysis="probing")


def news_around(clocks: list[datetime], market: str, symbol: str) -> list[Any]:
    """For step i: an item a minute before its start, one at it, one a minute after."""
    items = []
    for i, clock in enumerate(clocks):
        utc = MARKETS[market].to_utc(clock)
        moments = {"before": utc - timedelta(minutes=1), "at": utc}
        moments["after"] = utc + timedelta(minutes=1)
        for label, when in moments.items():
            items.append(
                make_news(
                    source="probe",
                    url=f"https://example.com/{market}/{i}/{label}",
                    title=f"probe{i} {symbol} {label}",
                    published_at=when,
                    symbols=[symbol],
                )
            )
    return items


def iso(utc: datetime) -> str:
    return utc.isoformat(timespec="seconds") + "Z"


@pytest.mark.parametrize(
    ("market", "symbol", "start", "end", "cash", "quantity"),
    [
        ("cn", "600519.SH", "2025-10-09", "2025-10-13", 1_000_000.0, 100),
        ("us", "AAPL", "2025-10-01", "2025-10-03", 100_000.0, 10),
    ],
)
def test_an_agent_sees_nothing_later_than_the_bar_start(
    lab: Lab,
    monkeypatch: pytest.MonkeyPatch,
    market: str,
    symbol: str,
    start: str,
    end: str,
    cash: float,
    quantity: float,
) -> None:
    register_policy("probe", Probe)
    monkeypatch.setattr(Probe, "seen", [])
    monkeypatch.setattr(Probe, "quantity", quantity)
    bars = loader.read_price_frame(lab.store, market, "60min", [symbol])
    daily = loader.read_price_frame(lab.store, market, "1d", [symbol]).set_index("ts")
    window = bars[(bars["ts"] >= start) & (bars["ts"] < pd.Timestamp(end) + pd.Timedelta(days=1))]
    clocks = [t.to_pydatetime() for t in window["ts"]]
    news_store.load_news(lab.store, news_around(clocks, market, symbol), "probe")
    model = lab.models.create(
        f"probe {market}",
        ai_model_id="policy/probe",
        market=market,
        tickers=[symbol],
        initial_cash=cash,
    )
    run = lab.start_run(
        model, "intraday", start, end, costs="zero", background=False, path="direct"
    )
    assert run.info.status == "completed", run.info.error
    by_time = bars.set_index("ts")
    seen = Probe.seen
    assert [s.clock for s in seen] == clocks
    for s in seen:
        bar = by_time.loc[s.clock]
        assert s.open_now == bar["open"] and s.now_fields == {"open"}
        assert s.future_refused and s.close_now_refused
        times = [pd.Timestamp(b["time"]) for b in s.history]
        assert times == [t for t in bars["ts"] if t < pd.Timestamp(s.clock)]  # all before
        for b in s.history:
            stored = by_time.loc[pd.Timestamp(b["time"])]
            assert [b[f] for f in ("open", "high", "low", "close")] == [
                stored[f] for f in ("open", "high", "low", "close")
            ]
        if times:
            assert s.previous_bar is not None
            assert pd.Timestamp(s.previous_bar["time"]) == times[-1] < pd.Timestamp(s.clock)
        assert s.news and all(item < iso(s.decision_utc) for item in s.news)
        assert iso(s.decision_utc - timedelta(minutes=1)) in s.news  # this step's latest
        held = s.portfolio_prices
        assert all(p == bar["open"] or p in set(bars[bars["ts"] < s.clock]["close"]) for p in held)
    # Real time: the first bar of a day opens at the day's open, at the session open;
    # the day's close is first seen, as the last bar's close, the next day.
    session_open = MARKETS[market].first_open
    for day, group in pd.Series(seen).groupby([s.clock.date() for s in seen]):
        first = group.iloc[0]
        if first.clock == session_open(day):
            assert first.open_now == daily.loc[pd.Timestamp(day), "open"]
        assert all(
            pd.Timestamp(b["time"]).date() < day for b in first.history
        )  # nothing of the day before its first bar
    fills = run.ledger().query("status == 'filled'")
    assert list(fills["fill_price"]) == [by_time.loc[clocks[0], "open"]]
    if market == "cn":
        assert seen[0].clock == datetime(2025, 10, 9, 9, 30)
        assert seen[0].open_now == daily.loc[pd.Timestamp("2025-10-09"), "open"]
        last_of_day = next(s for s in seen if s.clock.date() == datetime(2025, 10, 10).date())
        closes = {pd.Timestamp(b["time"]): b["close"] for b in last_of_day.history}
        assert closes[pd.Timestamp("2025-10-09 14:00")] == daily.loc["2025-10-09", "close"]


# --- AI-Trader's A-share hourly runs ---------------------------------------------------------


def test_aitrader_a_share_hourly_runs_book_at_bar_starts_and_reproduce_its_cash(lab: Lab) -> None:
    sources = [
        s
        for s in read_shipped_runs(shipped_runs_path(DATA_DIR))
        if s.group == "agent_data_astock_hour" and s.name.startswith("gpt-5")
    ]
    [run_id] = import_sources(lab.store, sources, owner_id=lab.user.id, origin="shipped")
    handle = lab.run(run_id)
    snap = handle.info.snapshot.to_json()
    assert snap["source_bar_labels"] == "end"
    assert snap["reconciliation"]["trades_without_our_price"] == 0
    assert snap["reconciliation"]["max_trade_cash_diff"] == 0.0
    assert snap["reconciliation"]["max_cash_drift"] == 0.0
    ledger = handle.ledger()
    assert set(ledger["ts"].dt.strftime("%H:%M")) <= {"09:30", "10:30", "13:00", "14:00"}
    first = ledger[ledger["status"] == "filled"].iloc[0]
    assert (first["ts"], first["symbol"]) == (pd.Timestamp("2025-10-09 09:30"), "600941.SH")
    bars = loader.read_price_frame(lab.store, "cn", "60min", ["600941.SH"]).set_index("ts")
    assert first["fill_price"] == bars.loc[first["ts"], "open"]  # the bar AI-Trader filled at
    # Booked as it traded: its cash change for 100 shares is 100 x that open.
    assert first["cash_after"] == 100_000.0 - 100 * first["fill_price"]
    equity = handle.equity()
    assert equity["ts"].iloc[0] == pd.Timestamp("2025-10-09 09:30")
    reasoning = handle.reasoning()
    assert reasoning["context"].iloc[0]["clock"].endswith("10:30:00")  # AI-Trader's own clock
    assert pd.Timestamp(reasoning["ts"].iloc[0]) == pd.Timestamp("2025-10-09 09:30")
    again = import_sources(lab.store, sources, owner_id=lab.user.id, origin="shipped")
    assert again == [] and again.results[0].status == "skipped"
