"""Run-level risk state: what the stateful limits need to know, and the exits they force.

The state is small and JSON-ready (stored with every committed step so a resumed run
continues with the same counters): the trading day, equity at the day's start and its
peak, orders filled today, units bought today (T+1), each position's cost basis (for
stop-losses), which circuit breakers have tripped, and how the last step's market-on-close
orders filled (reported to the agent at the next step, so a resumed run reports them too).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from ttg_lab.broker.fills import CloseFill
from ttg_lab.rules.constraints import RuleSet


@dataclass
class RiskState:
    """Counters the gate reads and the engine keeps up to date."""

    day: str = ""
    day_start_equity: float = 0.0
    peak_equity: float = 0.0
    equity_now: float = 0.0
    trades_today: int = 0
    bought_today: dict[str, float] = field(default_factory=dict)
    cost_basis: dict[str, float] = field(default_factory=dict)
    breakers: dict[str, str] = field(default_factory=dict)  # constraint -> day it tripped
    halted: dict[str, str] = field(default_factory=dict)  # constraint -> reason
    close_fills: list[CloseFill] = field(default_factory=list)  # the last step's, at its close

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RiskState:
        if not data:
            return cls()
        fills = [CloseFill(**f) for f in data.get("close_fills", [])]
        return cls(**{**data, "close_fills": fills})

    def begin_step(
        self, clock: datetime, equity_now: float, last_marked: float, rules: RuleSet
    ) -> None:
        """New step: roll the day, update equity and peak, trip breakers that are breached."""
        today = _day(clock)
        if today != self.day:
            self.day = today
            self.day_start_equity = last_marked
            self.trades_today = 0
            self.bought_today = {}
        self.equity_now = equity_now
        self.peak_equity = max(self.peak_equity, last_marked, equity_now)
        for rule in rules.with_param("max_daily_loss_pct"):
            limit = rule.params["max_daily_loss_pct"]
            loss = _change(equity_now, self.day_start_equity)
            if loss <= -limit and self.breakers.get(rule.name) != today:
                self.breakers[rule.name] = today
        for rule in rules.with_param("max_drawdown_pct"):
            limit = rule.params["max_drawdown_pct"]
            drawdown = _change(equity_now, self.peak_equity)
            if drawdown <= -limit and rule.name not in self.halted:
                self.halted[rule.name] = (
                    f"drawdown {drawdown:.2f}% from peak {self.peak_equity:,.2f} passed "
                    f"-{limit:g}% on {today}"
                )

    def end_step(self, marked_equity: float) -> None:
        self.peak_equity = max(self.peak_equity, marked_equity)

    def record_fill(
        self, action: str, symbol: str, quantity: float, price: float, held_before: float
    ) -> None:
        """Update counters after a fill (cost basis is per unit, for longs and shorts)."""
        self.trades_today += 1
        if action == "buy":
            self.bought_today[symbol] = self.bought_today.get(symbol, 0.0) + quantity
        size_before = abs(held_before)
        if action in ("buy", "short"):
            basis = self.cost_basis.get(symbol, price)
            self.cost_basis[symbol] = (basis * size_before + price * quantity) / (
                size_before + quantity
            )
        elif quantity >= size_before - 1e-9:
            self.cost_basis.pop(symbol, None)


def _day(clock: datetime) -> str:
    return date(clock.year, clock.month, clock.day).isoformat()


def _change(value: float, base: float) -> float:
    """Percent change of ``value`` against ``base`` (0 when base is not positive)."""
    return (value / base - 1.0) * 100.0 if base > 0 else 0.0
