"""Broker, hard gates and the ledger: cash, holdings and equity always reconcile."""

from __future__ import annotations

import math
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttg_lab.broker.costs import COST_PRESETS, CostModel, max_affordable, resolve_cost_model
from ttg_lab.broker.portfolio import Portfolio
from ttg_lab.config import resolve_settings
from ttg_lab.engine.context import RunContext
from ttg_lab.engine.orders import place_order
from ttg_lab.errors import ValidationError
from ttg_lab.market.asof import PriceIndex
from ttg_lab.market.markets import get_market
from ttg_lab.market.shipped import read_shipped
from ttg_lab.tools import trade

SYMBOLS = ["AAPL", "MSFT", "NVDA", "QQQ"]


@pytest.fixture(scope="module")
def index() -> PriceIndex:
    frame = read_shipped("us_daily", resolve_settings().data_dir)
    return PriceIndex(frame[frame["symbol"].isin([*SYMBOLS, "AMD"])], "us", "1d")


def context(
    index: PriceIndex, cash: float = 10_000.0, costs: CostModel | None = None, market: str = "us"
) -> RunContext:
    ctx = RunContext(
        run_id=1,
        market=get_market(market),
        index=index,
        tickers=frozenset(SYMBOLS),
        portfolio=Portfolio(cash),
        costs=costs or COST_PRESETS["default"],
    )
    ctx.advance(0, index.calendar[10])
    return ctx


def test_fees_and_slippage() -> None:
    costs = CostModel(commission_bps=10, per_share=0.01, min_per_order=2.0, slippage_bps=50)
    assert costs.fill_price("buy", 100.0) == pytest.approx(100.5)
    assert costs.fill_price("short", 100.0) == pytest.approx(99.5)
    assert costs.fees(1, 100.0) == 2.0  # minimum applies
    assert costs.fees(1000, 100.0) == pytest.approx(100_000 * 0.001 + 10.0)
    assert costs.fees(0, 100.0) == 0.0


def test_bad_cost_models_are_refused() -> None:
    with pytest.raises(ValidationError, match="commission_bps"):
        CostModel(commission_bps=-1)
    with pytest.raises(ValidationError, match="unknown cost preset"):
        resolve_cost_model("free-lunch")
    with pytest.raises(ValidationError, match="unknown cost model field"):
        resolve_cost_model({"commision_bps": 1})


@pytest.mark.parametrize("costs", list(COST_PRESETS.values()))
@pytest.mark.parametrize("cash", [0.5, 99.0, 1234.56, 1e6])
def test_max_affordable_fits_exactly(costs: CostModel, cash: float) -> None:
    for fractional in (False, True):
        qty = max_affordable(cash, 97.31, costs, fractional)
        price = costs.fill_price("buy", 97.31)
        assert qty * price + costs.fees(qty, price) <= cash
        bigger = qty + (1 if not fractional else qty * 1e-3 + 1e-6)
        assert bigger * price + costs.fees(bigger, price) > cash


def test_fill_books_cash_fees_and_holdings(index: PriceIndex) -> None:
    ctx = context(index)
    open_price = index.bar_value("AAPL", ctx.clock, "open")
    assert open_price is not None
    answer = trade.buy(ctx, "AAPL", 10)
    assert answer["status"] == "filled"
    price = open_price * (1 + 2 / 1e4)
    fees = 10 * price * 1 / 1e4
    assert answer["price"] == pytest.approx(price)
    assert ctx.portfolio.cash == pytest.approx(10_000 - 10 * price - fees)
    row = ctx.record.ledger[-1]
    assert row.holdings == {"AAPL": 10.0} and row.cash_after == ctx.portfolio.cash


@pytest.mark.parametrize(
    ("action", "symbol", "qty", "reason"),
    [
        ("buy", "AAPL", -5, "positive"),
        ("buy", "AAPL", 0, "positive"),
        ("buy", "AAPL", "ten", "must be a number"),
        ("buy", "AAPL", float("nan"), "must be a number"),
        ("buy", "AAPL", 2.5, "whole units"),
        ("buy", "AAPL", 1e12, "absurd"),
        ("buy", "AAPL", 1_000_000, "insufficient cash"),
        ("buy", "ZZZZ", 1, "unknown symbol"),
        ("buy", "AMD", 1, "not one of this model's tradable tickers"),
        ("buy", "", 1, "non-empty"),
        ("sell", "AAPL", 1, "cannot sell 1 AAPL: 0 AAPL held"),
        ("cover", "AAPL", 1, "cannot cover"),
        ("hodl", "AAPL", 1, "unknown action"),
    ],
)
def test_hard_gates_refuse_with_reason(
    index: PriceIndex, action: str, symbol: str, qty: object, reason: str
) -> None:
    ctx = context(index)
    answer = place_order(ctx, action, symbol, qty)
    assert answer["status"] == "rejected"
    assert reason in answer["reason"]
    assert ctx.portfolio.cash == 10_000.0 and not ctx.portfolio.positions
    assert ctx.record.ledger[-1].status == "rejected"


def test_no_price_at_the_clock_refuses(index: PriceIndex) -> None:
    ctx = context(index)
    ctx.advance(1, datetime(2025, 7, 4))  # US holiday: no bar
    assert "no price" in trade.buy(ctx, "AAPL", 1)["reason"]


def test_same_order_id_never_trades_twice(index: PriceIndex) -> None:
    ctx = context(index)
    first = trade.buy(ctx, "AAPL", 3, order_id="retry-1")
    again = trade.buy(ctx, "AAPL", 3, order_id="retry-1")
    assert again["duplicate"] is True and again["order_id"] == first["order_id"]
    assert ctx.portfolio.quantity("AAPL") == 3
    assert len(ctx.record.ledger) == 1


def test_a_used_order_id_is_refused_for_another_order(index: PriceIndex) -> None:
    """The same order again under its id is answered once; another order under that id is
    refused (it used to get the first order's answer), and trades nothing."""
    ctx = context(index)
    trade.buy(ctx, "AAPL", 3, order_id="mine")
    other = trade.buy(ctx, "AAPL", 5, order_id="mine")
    assert (
        other["status"] == "rejected"
        and "order id mine was used for another order" in (other["reason"])
    )
    assert "buy 3 AAPL" in other["reason"]
    for same in (3.0, "3", " aapl "):
        args = ("AAPL", same) if same != " aapl " else (same, 3)
        assert trade.buy(ctx, *args, order_id="mine")["duplicate"] is True
    assert trade.sell(ctx, "AAPL", 3, order_id="mine")["status"] == "rejected"
    assert ctx.portfolio.quantity("AAPL") == 3 and len(ctx.record.ledger) == 1


def test_a_bool_is_never_a_quantity(index: PriceIndex) -> None:
    ctx = context(index)
    for flag in (True, False):
        answer = trade.buy(ctx, "AAPL", flag)
        assert answer["status"] == "rejected"
        assert answer["reason"] == f"quantity must be a number, not a bool ({flag})"
    assert ctx.portfolio.positions == {}


def test_short_and_cover_round_trip(index: PriceIndex) -> None:
    ctx = context(index, costs=COST_PRESETS["zero"])
    assert trade.short(ctx, "NVDA", 10)["status"] == "filled"
    assert ctx.portfolio.quantity("NVDA") == -10
    assert "while short" in trade.buy(ctx, "NVDA", 1)["reason"]
    assert trade.cover(ctx, "NVDA", 10)["status"] == "filled"
    assert ctx.portfolio.cash == pytest.approx(10_000.0)
    assert not ctx.portfolio.positions


order_strategy = st.tuples(
    st.sampled_from(["buy", "sell", "short", "cover"]),
    st.sampled_from([*SYMBOLS, "ZZZZ"]),
    st.one_of(st.integers(-5, 200), st.floats(-10, 500), st.just(float("nan")), st.just("7")),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 95), st.lists(order_strategy, max_size=6)), max_size=12
    ),
    costs=st.sampled_from(list(COST_PRESETS)),
    cash=st.floats(100, 1e6),
)
def test_reconciliation_over_random_orders(
    index: PriceIndex,
    steps: list[tuple[int, list[tuple[str, str, object]]]],
    costs: str,
    cash: float,
) -> None:
    ctx = context(index, cash=cash, costs=COST_PRESETS[costs])
    book_cash = cash
    for day, orders in sorted(steps, key=lambda s: s[0]):
        ctx.advance(day, index.calendar[day])
        for action, symbol, qty in orders:
            before = ctx.portfolio.copy()
            answer = place_order(ctx, action, symbol, qty)
            if answer["status"] == "rejected":
                assert ctx.portfolio == before
                continue
            sign = 1 if action in ("buy", "cover") else -1
            book_cash -= sign * answer["quantity"] * answer["price"] + answer["fees"]
            assert ctx.portfolio.cash >= -1e-6, "hard gate: no negative cash"
            long_before = max(before.quantity(symbol), 0)
            if action == "sell":
                assert answer["quantity"] <= long_before + 1e-9
        # cash equals the sum of all fills, and equity = cash + sum(qty * price) at any prices
        assert math.isclose(ctx.portfolio.cash, book_cash, rel_tol=1e-9, abs_tol=1e-6)
        closes = {s: index.close_at_or_before(s, ctx.clock) or 0.0 for s in SYMBOLS}
        value = sum(q * closes[s] for s, q in ctx.portfolio.positions.items())
        assert math.isclose(
            ctx.portfolio.equity(closes), ctx.portfolio.cash + value, rel_tol=1e-12, abs_tol=1e-6
        )
        last = ctx.record.ledger[-1] if ctx.record.ledger else None
        if last is not None:
            assert last.cash_after == pytest.approx(ctx.portfolio.cash)
            assert last.holdings == ctx.portfolio.snapshot()
