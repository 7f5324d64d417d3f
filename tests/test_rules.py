"""Structured rules and risk gates: each limit, the hard gates, precedence, invariants."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttg_lab.broker.costs import COST_PRESETS
from ttg_lab.broker.portfolio import Portfolio
from ttg_lab.config import resolve_settings
from ttg_lab.engine.context import RunContext
from ttg_lab.engine.orders import place_order
from ttg_lab.engine.step import simulate_step
from ttg_lab.errors import PermissionDeniedError, ValidationError
from ttg_lab.lab import Lab
from ttg_lab.market.asof import PriceIndex
from ttg_lab.market.markets import get_market
from ttg_lab.market.shipped import read_shipped
from ttg_lab.rules.constraints import Constraint, RuleSet, combine
from ttg_lab.rules.gate import stop_loss_exits
from ttg_lab.tools import trade

SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMD", "INTC", "QQQ"]
DAY = 20


@pytest.fixture(scope="module")
def daily() -> PriceIndex:
    frame = read_shipped("us_daily", resolve_settings().data_dir)
    return PriceIndex(frame[frame["symbol"].isin(SYMBOLS)], "us", "1d")


@pytest.fixture(scope="module")
def hourly() -> PriceIndex:
    frame = read_shipped("us_hourly", resolve_settings().data_dir)
    return PriceIndex(frame[frame["symbol"].isin(SYMBOLS)], "us", "60min")


def ctx_with(
    index: PriceIndex,
    *params: dict[str, Any],
    cash: float = 100_000.0,
    positions: dict[str, float] | None = None,
    step: int = DAY,
    market: str = "us",
    scope: dict[str, Any] | None = None,
) -> RunContext:
    rules = RuleSet(
        tuple(Constraint(f"r{i}", "model", p, scope or {}) for i, p in enumerate(params))
    )
    ctx = RunContext(
        run_id=1,
        market=get_market(market),
        index=index,
        tickers=frozenset(index.symbols),
        portfolio=Portfolio(cash, dict(positions or {})),
        costs=COST_PRESETS["zero"],
        rules=rules,
    )
    ctx.advance(step, index.calendar[step])
    ctx.start_step()
    return ctx


def open_of(ctx: RunContext, symbol: str) -> float:
    price = ctx.view.open(symbol)
    assert price is not None
    return price


# -- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"max_postion_pct": 10}, "unknown rule parameter.*max_postion_pct"),
        ({"max_position_pct": 0}, r"max_position_pct must be in \(0, 100\]"),
        ({"max_position_pct": 150}, "max_position_pct must be in"),
        ({"max_position_pct": "ten"}, "must be a number"),
        ({"max_open_positions": 2.5}, "whole number"),
        ({"allow_short": "no"}, "true or false"),
        ({"trading_hours": {"start": "16:00", "end": "10:00"}}, "start must be before end"),
        ({"trading_hours": {"start": "9am", "end": "10:00"}}, "HH:MM"),
        ({"blocked_symbols": [1, 2]}, "list of symbols"),
        ({}, "at least one parameter"),
    ],
)
def test_invalid_rules_are_refused_and_nothing_saved(
    lab: Lab, parameters: dict[str, Any], message: str
) -> None:
    model = lab.models.create("guarded", ai_model_id="baseline/cash")
    with pytest.raises(ValidationError, match=message):
        lab.rules.add(model, "bad", parameters)
    assert lab.rules.list(model) == []


def test_rule_fields_and_scope_are_validated(lab: Lab) -> None:
    model = lab.models.create("guarded", ai_model_id="baseline/cash")
    with pytest.raises(ValidationError, match="category"):
        lab.rules.add(model, "x", {"max_position_pct": 5}, category="vibes")
    with pytest.raises(ValidationError, match="priority"):
        lab.rules.add(model, "x", {"max_position_pct": 5}, priority=11)
    with pytest.raises(ValidationError, match="unknown scope key"):
        lab.rules.add(model, "x", {"max_position_pct": 5}, scope={"sector": ["tech"]})
    rule = lab.rules.add(model, "x", {"max_position_pct": 5}, scope={"symbols": "nvda, amd"})
    assert rule.scope == {"symbols": ["AMD", "NVDA"]}
    with pytest.raises(ValidationError, match="already has a rule named"):
        lab.rules.add(model, "x", {"max_open_positions": 5})
    with pytest.raises(ValidationError, match="max_position_pct must be in"):
        lab.rules.update(model, "x", parameters={"max_position_pct": -1}, priority=9)
    assert lab.rules.get(model, "x").priority == 5  # nothing half-changed
    lab.rules.update(model, "x", active=False)
    assert not lab.rules.get(model, "x").active
    lab.rules.remove(model, "x")
    assert lab.rules.list(model) == []


# -- each limit ------------------------------------------------------------------------


def test_max_position_pct_cuts_the_order(daily: PriceIndex) -> None:
    ctx = ctx_with(daily, {"max_position_pct": 10})
    answer = trade.buy(ctx, "AAPL", 1000)
    expected = math.floor(10_000 / open_of(ctx, "AAPL"))
    assert answer["status"] == "resized" and answer["quantity"] == expected
    assert "r0" in answer["rules"] and "10% of equity" in answer["notes"]
    assert trade.buy(ctx, "AAPL", 5)["status"] == "rejected"  # no room left


def test_max_open_positions_refuses_a_new_symbol_only(daily: PriceIndex) -> None:
    ctx = ctx_with(daily, {"max_open_positions": 2}, positions={"AAPL": 1, "MSFT": 1})
    assert "2 open positions" in trade.buy(ctx, "NVDA", 1)["reason"]
    assert trade.buy(ctx, "AAPL", 1)["status"] == "filled"


def test_min_cash_reserve_and_order_size_limits(daily: PriceIndex) -> None:
    ctx = ctx_with(daily, {"min_cash_reserve_pct": 90})
    answer = trade.buy(ctx, "AAPL", 1000)
    assert answer["status"] == "resized" and ctx.portfolio.cash >= 90_000 - 1e-6
    ctx = ctx_with(daily, {"max_order_value": 1000})
    assert trade.buy(ctx, "MSFT", 10)["quantity"] == math.floor(1000 / open_of(ctx, "MSFT"))
    ctx = ctx_with(daily, {"max_order_pct": 1})
    assert trade.buy(ctx, "NVDA", 1000)["quantity"] == math.floor(1000 / open_of(ctx, "NVDA"))


def test_max_trades_per_day_resets_the_next_day(daily: PriceIndex) -> None:
    ctx = ctx_with(daily, {"max_trades_per_day": 2})
    assert [trade.buy(ctx, "AAPL", 1)["status"] for _ in range(3)] == [
        "filled",
        "filled",
        "rejected",
    ]
    ctx.advance(DAY + 1, daily.calendar[DAY + 1])
    ctx.start_step()
    assert trade.buy(ctx, "AAPL", 1)["status"] == "filled"


def test_allowed_and_blocked_symbols_stop_new_risk_not_exits(daily: PriceIndex) -> None:
    ctx = ctx_with(
        daily,
        {"blocked_symbols": ["NVDA"]},
        {"allowed_symbols": ["NVDA", "AAPL"]},
        positions={"NVDA": 5, "MSFT": 5},
    )
    assert "NVDA is blocked" in trade.buy(ctx, "NVDA", 1)["reason"]
    assert "not among the allowed" in trade.buy(ctx, "MSFT", 1)["reason"]
    assert trade.sell(ctx, "NVDA", 5)["status"] == "filled"
    assert trade.sell(ctx, "MSFT", 5)["status"] == "filled"
    assert trade.buy(ctx, "AAPL", 1)["status"] == "filled"


def test_short_selling_needs_permission(daily: PriceIndex) -> None:
    ctx = ctx_with(daily, {"allow_short": False})
    assert "short selling is not allowed" in trade.short(ctx, "AMD", 1)["reason"]
    ctx = ctx_with(daily, {"allow_short": True})
    assert trade.short(ctx, "AMD", 1)["status"] == "filled"


def test_daily_loss_circuit_breaker(daily: PriceIndex) -> None:
    ctx = ctx_with(daily, {"max_daily_loss_pct": 2})
    ctx.advance(DAY + 1, daily.calendar[DAY + 1])
    ctx.start_step(last_marked=ctx.equity_now() / 0.97)  # down 3% since the day began
    assert "circuit breaker" in trade.buy(ctx, "AAPL", 1)["reason"]
    ctx.portfolio.positions["AAPL"] = 2
    assert trade.sell(ctx, "AAPL", 1)["status"] == "filled"  # exits still allowed
    ctx.advance(DAY + 2, daily.calendar[DAY + 2])
    ctx.start_step(last_marked=ctx.equity_now())
    assert trade.buy(ctx, "AAPL", 1)["status"] == "filled"


def test_drawdown_halt_lasts_for_the_run(daily: PriceIndex) -> None:
    ctx = ctx_with(daily, {"max_drawdown_pct": 10})
    ctx.advance(DAY + 1, daily.calendar[DAY + 1])
    ctx.start_step(last_marked=ctx.equity_now() / 0.85)
    ctx.advance(DAY + 2, daily.calendar[DAY + 2])
    ctx.start_step(last_marked=ctx.equity_now())
    answer = trade.buy(ctx, "AAPL", 1)
    assert "halted for the run" in answer["reason"] and "drawdown" in answer["reason"]


def test_trading_hours_apply_to_intraday_bars(hourly: PriceIndex) -> None:
    hours = {"trading_hours": {"start": "11:00", "end": "14:00"}}
    first = hourly.calendar.index(datetime(2025, 10, 2, 10, 0))
    ctx = ctx_with(hourly, hours, step=first)
    assert "outside trading hours 11:00-14:00 (now 10:00)" in trade.buy(ctx, "AAPL", 1)["reason"]
    ctx.advance(first + 1, hourly.calendar[first + 1])
    assert trade.buy(ctx, "AAPL", 1)["status"] == "filled"


def test_lot_size_and_t_plus_one(daily: PriceIndex) -> None:
    ctx = ctx_with(daily, {"lot_size": 100, "t_plus_one": True}, positions={"INTC": 150})
    bought = trade.buy(ctx, "AAPL", 250)
    assert bought["quantity"] == 200 and "lots of 100" in bought["notes"]
    assert "T+1" in trade.sell(ctx, "AAPL", 100)["reason"]
    assert trade.sell(ctx, "INTC", 150)["status"] == "filled"  # closing an odd lot is fine
    ctx.advance(DAY + 1, daily.calendar[DAY + 1])
    ctx.start_step()
    assert trade.sell(ctx, "AAPL", 100)["status"] == "filled"


def test_stop_loss_forces_an_exit_at_the_open(daily: PriceIndex) -> None:
    ctx = ctx_with(daily, {"stop_loss_pct": 5}, scope={"symbols": ["AAPL"]})
    trade.buy(ctx, "AAPL", 10)
    trade.buy(ctx, "MSFT", 10)
    ctx.risk.cost_basis = {"AAPL": open_of(ctx, "AAPL") * 1.2, "MSFT": open_of(ctx, "MSFT") * 1.2}
    assert stop_loss_exits(ctx) == [("sell", "AAPL", 10.0, "r0")]  # MSFT is out of scope

    class Idle:
        def run_step(self, ctx: RunContext) -> None:
            pass

    simulate_step(ctx, Idle(), DAY + 1, daily.calendar[DAY + 1], ctx.equity_now())
    assert "AAPL" not in ctx.portfolio.positions and ctx.portfolio.positions["MSFT"] == 10
    forced = ctx.record.decisions[0]
    assert forced["origin"] == "rule:r0" and ctx.record.ledger[0].reason == "forced by r0"


def test_scope_limits_a_rule_to_its_symbols(daily: PriceIndex) -> None:
    ctx = ctx_with(daily, {"max_order_value": 100}, scope={"exclude_symbols": ["MSFT"]})
    assert trade.buy(ctx, "AAPL", 5)["status"] == "rejected"
    assert trade.buy(ctx, "MSFT", 5)["status"] == "filled"


def test_hard_gates_hold_whatever_the_rules_say(daily: PriceIndex) -> None:
    ctx = ctx_with(
        daily,
        {"allow_short": True, "max_order_value": 1e12, "max_position_pct": 100},
        cash=1000.0,
        positions={"AAPL": 2},
    )
    assert "cannot sell 3 AAPL: 2 AAPL held" in trade.sell(ctx, "AAPL", 3)["reason"]
    assert "insufficient cash" in trade.buy(ctx, "MSFT", 100)["reason"]
    assert "cannot short AAPL while long" in trade.short(ctx, "AAPL", 1)["reason"]
    assert "absurd" in trade.buy(ctx, "MSFT", 1e10)["reason"]
    ctx.advance(DAY + 1, datetime(2025, 7, 4))  # a holiday: no bar
    assert "no price" in trade.buy(ctx, "MSFT", 1)["reason"]


# -- precedence ----------------------------------------------------------------------------


def test_the_strictest_limit_wins_across_model_profile_and_global(lab: Lab) -> None:
    model = lab.models.create("layered", ai_model_id="baseline/buy_and_hold", tickers=["AAPL"])
    lab.rules.add(model, "loose", {"max_position_pct": 50, "allow_short": True})
    lab.profile.update(max_position_pct=20, short_selling_allowed=False)
    lab.settings.set("rules.ceilings", {"max_position_pct": 30, "max_open_positions": 12})
    lab.settings.set("rules.defaults", {"max_open_positions": 5, "min_cash_reserve_pct": 1})
    effective = lab.rules.effective(model)
    by_origin = {c.origin: c.params for c in effective.constraints}
    assert by_origin["model"] == {"allow_short": True, "max_position_pct": 50.0}
    assert by_origin["profile"] == {"max_position_pct": 20.0, "allow_short": False}
    assert by_origin["global-ceiling"] == {"max_position_pct": 30.0, "max_open_positions": 12}
    # a default applies only where nothing else sets the parameter
    assert by_origin["global-default"] == {"min_cash_reserve_pct": 1.0}

    run = lab.start_run(model, start="2025-06-10", end="2025-06-12", costs="zero", background=False)
    first = run.ledger().iloc[0]
    assert first["status"] == "filled"
    price = first["fill_price"]
    assert first["quantity"] == math.floor(0.20 * 10_000 / price)  # the profile's 20% wins
    fired = {f["rule"] for f in lab.rules.decisions(run.id).iloc[0]["firings"]}
    assert fired == {"loose", "user profile", "global ceiling"}  # all cut; the strictest bound


def test_built_in_default_forbids_shorting_until_someone_allows_it() -> None:
    none = combine([], None, None, None)
    assert none.constraints[0].params == {"allow_short": False}
    allowed = combine([Constraint("m", "model", {"allow_short": True})], None, None, None)
    assert [c.params for c in allowed.constraints] == [{"allow_short": True}]
    ceiling = combine(
        [Constraint("m", "model", {"allow_short": True})], None, {"allow_short": False}, None
    )
    assert {"allow_short": False} in [c.params for c in ceiling.constraints]


def test_only_admins_change_global_settings(lab: Lab) -> None:
    lab.user.role = "user"
    with pytest.raises(PermissionDeniedError, match="changing global settings needs an admin"):
        lab.settings.set("rules.ceilings", {"max_position_pct": 10})
    lab.user.role = "admin"
    with pytest.raises(ValidationError, match="unknown rule parameter"):
        lab.settings.set("rules.ceilings", {"max_leverage": 10})
    assert lab.settings.all() == {}


# -- invariants under any rules and any orders -----------------------------------------

rule_params = st.fixed_dictionaries(
    {},
    optional={
        "max_position_pct": st.floats(1, 100),
        "max_open_positions": st.integers(1, 6),
        "min_cash_reserve_pct": st.floats(0, 50),
        "max_order_value": st.floats(100, 50_000),
        "max_order_pct": st.floats(1, 100),
        "max_trades_per_day": st.integers(1, 5),
        "blocked_symbols": st.lists(st.sampled_from(SYMBOLS), max_size=2),
        "allow_short": st.booleans(),
        "lot_size": st.sampled_from([1, 10, 100]),
        "t_plus_one": st.booleans(),
    },
).filter(bool)
orders = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell", "short", "cover"]),
        st.sampled_from(SYMBOLS),
        st.one_of(st.integers(1, 400), st.floats(0.5, 2000)),
    ),
    max_size=25,
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rules=st.lists(rule_params, min_size=1, max_size=4),
    days=st.lists(orders, min_size=1, max_size=4),
)
def test_no_invariant_breaks_under_any_rules(
    daily: PriceIndex, rules: list[dict[str, Any]], days: list[list[tuple[str, str, float]]]
) -> None:
    ctx = ctx_with(daily, *rules, cash=50_000.0)
    limits = RuleSet(tuple(Constraint(f"r{i}", "model", p) for i, p in enumerate(rules)))
    for offset, day_orders in enumerate(days):
        ctx.advance(DAY + offset, daily.calendar[DAY + offset])
        ctx.start_step()
        equity = ctx.equity_now()
        for action, symbol, qty in day_orders:
            before = ctx.portfolio.copy()
            answer = place_order(ctx, action, symbol, qty)
            assert ctx.portfolio.cash >= -1e-6
            if answer["status"] == "rejected":
                assert ctx.portfolio == before
                continue
            filled = answer["quantity"]
            assert filled <= (float(qty) if isinstance(qty, int | float) else 0) + 1e-9
            price = answer["price"]
            for c in limits.constraints:
                p = c.params
                if action in ("buy", "short"):
                    assert symbol not in p.get("blocked_symbols", [])
                    if "max_position_pct" in p:
                        assert (
                            abs(ctx.portfolio.quantity(symbol)) * price
                            <= p["max_position_pct"] / 100 * equity * (1 + 1e-6) + price
                        )
                if action == "short":
                    assert p.get("allow_short") is not False
                if "max_order_value" in p:
                    assert filled * price <= p["max_order_value"] * (1 + 1e-6) + 1e-6
                if "max_open_positions" in p and action in ("buy", "short"):
                    assert len(ctx.portfolio.positions) <= max(
                        p["max_open_positions"], len(before.positions)
                    )
                if "max_trades_per_day" in p:
                    assert ctx.risk.trades_today <= p["max_trades_per_day"]
                if "lot_size" in p and action in ("buy", "short"):
                    assert filled % p["lot_size"] == 0
        # cash and holdings reconcile at any prices
        prices = {s: daily.close_at_or_before(s, ctx.clock) or 0.0 for s in SYMBOLS}
        value = sum(q * prices[s] for s, q in ctx.portfolio.positions.items())
        assert math.isclose(
            ctx.portfolio.equity(prices), ctx.portfolio.cash + value, rel_tol=1e-12, abs_tol=1e-6
        )


# -- runs, attribution, counterfactuals --------------------------------------------------


def test_a_strict_run_shows_its_decisions_and_attribution(lab: Lab) -> None:
    model = lab.models.create(
        "strict momentum", ai_model_id="baseline/momentum", initial_cash=100_000.0
    )
    lab.rules.apply_preset(model, "strict")
    run = lab.start_run(model, path="direct")
    assert run.wait(120) == "completed"
    decisions = lab.rules.decisions(run.id)
    assert {"allow", "resize"} <= set(decisions["verdict"])
    table = lab.run(run.id).attribution()
    assert set(table["rule"]) >= {
        "position cap",
        "daily limits",
        "stop loss",
        "drawdown halt",
        "no shorting",
    }
    cap = table.set_index("rule").loc["position cap"]
    assert cap["resized"] + cap["blocked"] > 0
    # replaying the recorded orders with all rules reproduces the run exactly
    assert table["final_value"].iloc[0] == pytest.approx(run.info.final_value, rel=1e-12)


@pytest.mark.parametrize(
    ("rule", "parameters"),
    [
        ("no chips", {"blocked_symbols": ["NVDA", "AMD", "INTC"]}),
        ("small orders", {"max_order_value": 600}),
    ],
)
def test_counterfactual_without_a_rule_matches_a_real_run_without_it(
    lab: Lab, rule: str, parameters: dict[str, Any]
) -> None:
    tickers = ["AAPL", "MSFT", "NVDA", "AMD", "INTC", "AMZN"]
    with_rule = lab.models.create("with", ai_model_id="baseline/buy_and_hold", tickers=tickers)
    without = lab.models.create("without", ai_model_id="baseline/buy_and_hold", tickers=tickers)
    lab.rules.add(with_rule, rule, parameters)
    ruled = lab.start_run(with_rule, path="direct", background=False)
    free = lab.start_run(without, path="direct", background=False)
    table = lab.run(ruled.id).attribution().set_index("rule")
    assert table.loc[rule, "blocked"] + table.loc[rule, "resized"] > 0
    assert table.loc[rule, "final_without"] == pytest.approx(free.info.final_value, rel=1e-12)
    assert table.loc[rule, "pnl_effect"] == pytest.approx(
        ruled.info.final_value - free.info.final_value, rel=1e-9, abs=1e-6
    )


def test_resumed_run_keeps_its_risk_state(lab: Lab) -> None:
    model = lab.models.create(
        "stateful",
        ai_model_id="baseline/random",
        initial_cash=50_000.0,
        parameters={"trade_probability": 0.9},
    )
    lab.rules.add(
        model, "limits", {"max_trades_per_day": 1, "stop_loss_pct": 3, "max_drawdown_pct": 4}
    )
    whole = lab.start_run(model, path="direct", seed=3, background=False)

    def stop_at_40(event: Any) -> None:
        if event.kind == "step" and event.data["done"] == 40:
            lab.run(event.run_id).stop()

    part = lab.start_run(model, path="direct", seed=3, on_event=stop_at_40)
    assert part.wait(60) == "stopped"
    resumed = lab.run(part.id).resume()
    assert resumed.wait(60) == "completed"
    columns = ["step_index", "action", "symbol", "quantity", "fill_price", "status", "reason"]
    pd.testing.assert_frame_equal(whole.ledger()[columns], resumed.ledger()[columns])


def test_a_forced_exit_does_not_swallow_the_agents_first_order(lab: Lab) -> None:
    """Regression: stop-loss exits took order id s{step}-c1, the id of the chat agent's
    first tool call, so that order was dropped as a duplicate on the chat path."""
    model = lab.models.create("stopped", ai_model_id="baseline/random", initial_cash=100_000.0)
    lab.rules.apply_preset(model, "conservative")
    ledgers = []
    for path in ("chat", "direct"):
        run = lab.start_run(model, path=path, background=False, end="2025-08-29")
        ledgers.append(
            run.ledger()[["step_index", "action", "symbol", "quantity", "order_id", "status"]]
        )
    forced = ledgers[1][ledgers[1]["order_id"].str.contains("-stop")]
    assert not forced.empty, "the period must include a stop-loss exit"
    pd.testing.assert_frame_equal(ledgers[0], ledgers[1])
