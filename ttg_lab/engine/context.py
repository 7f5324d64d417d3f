"""A run's state at its current step: the clock, the portfolio, the book an order is
judged against, and the record of what the step did.

Tools and agents act on a :class:`RunContext`; the engine moves it from step to step and
commits each :class:`StepRecord`. Each run owns its context; nothing here is global, so
two runs in one process never see each other's clock, cash or positions.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ttg_lab.broker.costs import CostModel
from ttg_lab.broker.fills import PendingOrder
from ttg_lab.broker.portfolio import Portfolio
from ttg_lab.engine.ledger import LedgerRow
from ttg_lab.market.asof import AsOfView, PriceIndex
from ttg_lab.market.markets import Market
from ttg_lab.market.masking import Mask
from ttg_lab.news.search import NewsIndex
from ttg_lab.rules.constraints import RuleSet
from ttg_lab.rules.risk import RiskState


@dataclass(frozen=True)
class OrderRequest:
    """An order as the agent asked for it, normalised: two calls with one order id are the
    same order (answered once) exactly when their requests are equal."""

    action: str
    symbol: str
    quantity: float | str  # the number asked for, or the text of what was not a number

    def __str__(self) -> str:
        quantity = f"{self.quantity:g}" if isinstance(self.quantity, float) else self.quantity
        return f"{self.action} {quantity} {self.symbol}"


@dataclass
class StepRecord:
    """What happened during one step, written to the store in one transaction."""

    step_index: int
    clock: datetime
    ledger: list[LedgerRow] = field(default_factory=list)
    reasoning: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: dict[str, OrderRequest] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_cost: float = 0.0
    events: list[tuple[str, str]] = field(default_factory=list)  # (kind, message) to emit
    _order_seq: int = 0

    def next_order_id(self) -> str:
        """A deterministic id: the same step replayed gives the same ids."""
        self._order_seq += 1
        return f"s{self.step_index}-c{self._order_seq}"

    @property
    def filled(self) -> list[LedgerRow]:
        return [row for row in self.ledger if row.status == "filled"]


@dataclass
class RunContext:
    """A run's state at the current step, as the engine keeps it and the tools see it."""

    run_id: int
    market: Market
    index: PriceIndex
    tickers: frozenset[str]
    portfolio: Portfolio
    costs: CostModel
    fill: str = "open"
    seed: int = 0
    news: NewsIndex | None = None
    read_only: bool = False
    rules: RuleSet = field(default_factory=RuleSet)
    risk: RiskState = field(default_factory=RiskState)
    mask: Mask | None = None
    """A masked run's mask: what the model sees is translated by it (None: unmasked)."""
    step_index: int = 0
    clock: datetime = datetime.min
    record: StepRecord = field(default_factory=lambda: StepRecord(0, datetime.min))
    view: AsOfView = field(init=False)
    pending: list[PendingOrder] = field(init=False, default_factory=list)
    """Market-on-close orders accepted in this step, waiting for the bar's close."""
    _book: Portfolio | None = field(init=False, default=None, repr=False)
    lock: threading.RLock = field(init=False, repr=False)
    """Serialises tool calls on this context (HTTP servers may call tools in threads)."""

    def __post_init__(self) -> None:
        self.view = AsOfView(self.index, self.clock)
        self.lock = threading.RLock()

    def advance(self, step_index: int, clock: datetime) -> None:
        """Move the clock to a new step with an empty record."""
        self.step_index = step_index
        self.clock = clock
        self.record = StepRecord(step_index, clock)
        self.view = AsOfView(self.index, clock)
        self.pending = []
        self._book = None

    @property
    def fills_later(self) -> bool:
        """Whether orders fill after the decision (at the close), not while it is taken."""
        return self.fill != "open"

    @property
    def book(self) -> Portfolio:
        """The portfolio an order is judged against: the real one, with the market-on-close
        orders accepted so far in the step booked at the prices known now (the close is
        not), so every order of a step is judged with the ones before it."""
        return self.portfolio if self._book is None else self._book

    def hold(self, order: PendingOrder) -> None:
        """Accept a market-on-close order: it waits for the close, and the book counts it
        at its decision price (plus costs) until then."""
        reference = self.decision_price(order.symbol)
        assert reference is not None  # the gate refused orders without a price
        price = self.costs.fill_price(order.action, reference)
        if self._book is None:
            self._book = self.portfolio.copy()
        fees = self.costs.fees(order.quantity, price)
        self._book.apply_fill(order.action, order.symbol, order.quantity, price, fees)
        self.pending.append(order)

    def take_pending(self) -> list[PendingOrder]:
        """The orders waiting for the close, handed over to be filled (the book is the
        portfolio again)."""
        orders, self.pending, self._book = self.pending, [], None
        return orders

    def trades_today(self) -> int:
        """Orders filled today, and those waiting for today's close."""
        return self.risk.trades_today + len(self.pending)

    def bought_today(self, symbol: str) -> float:
        """Units of ``symbol`` bought today, with the buys waiting for today's close (T+1)."""
        waiting = sum(p.quantity for p in self.pending if p.action == "buy" and p.symbol == symbol)
        return self.risk.bought_today.get(symbol, 0.0) + waiting

    def start_step(self, last_marked: float | None = None) -> None:
        """Update the risk state for the new clock (days, equity, peak, breakers)."""
        equity = self.equity_now()
        self.risk.begin_step(
            self.clock, equity, equity if last_marked is None else last_marked, self.rules
        )

    def equity_now(self) -> float:
        """Equity valued with what is known now: today's opens, else the last closes."""
        view = self.view
        prices = {s: view.open(s) or view.last_close(s) or 0.0 for s in self.portfolio.positions}
        return self.portfolio.equity(prices)

    def decision_price(self, symbol: str) -> float | None:
        """The price an order is judged (sized, checked against cash) at: the current bar's
        open, the last price known at the clock (None: no bar now)."""
        return self.index.bar_value(symbol, self.clock, "open")

    def reference_price(self, symbol: str) -> float | None:
        """The price an order placed now fills at, before slippage (None: no bar now): the
        decision price, or for a market-on-close order the close, known after the step."""
        return self.index.bar_value(symbol, self.clock, self.fill)
