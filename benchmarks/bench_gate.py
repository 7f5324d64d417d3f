"""Gate decision time per order with 20 active rules (target median < 200 µs)."""

from __future__ import annotations

import random
import statistics
import time

from _common import fresh_lab

from ttg_lab.broker.costs import COST_PRESETS
from ttg_lab.broker.portfolio import Portfolio
from ttg_lab.engine.context import RunContext
from ttg_lab.market.cache import data_fingerprint, price_index
from ttg_lab.market.markets import get_market
from ttg_lab.rules.constraints import Constraint, RuleSet
from ttg_lab.rules.gate import check_order

TWENTY_RULES: list[dict[str, object]] = [
    {"max_position_pct": 10},
    {"max_open_positions": 40},
    {"min_cash_reserve_pct": 5},
    {"max_order_value": 50_000},
    {"max_order_pct": 8},
    {"max_trades_per_day": 500},
    {"blocked_symbols": ["TSLA", "MSTR"]},
    {"allow_short": False},
    {"max_daily_loss_pct": 5},
    {"max_drawdown_pct": 20},
    {"lot_size": 1},
    {"t_plus_one": False},
    {"stop_loss_pct": 10},
    {"max_position_pct": 15},
    {"max_order_pct": 12},
    {"max_order_value": 80_000},
    {"min_cash_reserve_pct": 2},
    {"max_open_positions": 60},
    {"max_trades_per_day": 800},
    {"max_drawdown_pct": 30},
]


def main() -> None:
    lab = fresh_lab()
    index = price_index(lab.store, "us", "1d", data_fingerprint(lab.store, "us", "1d"))
    rules = RuleSet(tuple(Constraint(f"rule {i}", "model", p) for i, p in enumerate(TWENTY_RULES)))
    symbols = [s for s in index.symbols if s != "QQQ"]
    rng = random.Random(0)
    positions = {s: float(rng.randint(1, 50)) for s in rng.sample(symbols, 30)}
    ctx = RunContext(
        run_id=0,
        market=get_market("us"),
        index=index,
        tickers=frozenset(symbols),
        portfolio=Portfolio(1_000_000.0, positions),
        costs=COST_PRESETS["default"],
        rules=rules,
    )
    ctx.advance(50, index.calendar[50])
    ctx.start_step()
    samples = []
    verdicts: dict[str, int] = {}
    for _ in range(20_000):
        action = rng.choice(["buy", "buy", "sell", "short"])
        symbol = rng.choice(symbols)
        quantity = rng.randint(1, 3000)
        start = time.perf_counter_ns()
        decision = check_order(ctx, action, symbol, quantity)
        samples.append((time.perf_counter_ns() - start) / 1000)
        verdicts[decision.verdict] = verdicts.get(decision.verdict, 0) + 1
    print(f"gate decisions with {len(rules.constraints)} active rules, 30 open positions:")
    median = statistics.median(samples)
    p99 = statistics.quantiles(samples, n=100)[98]
    print(f"  median {median:.1f} µs, p99 {p99:.1f} µs   (target median < 200 µs)")
    print(f"  verdicts: {verdicts}")


if __name__ == "__main__":
    main()
