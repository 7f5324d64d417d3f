"""Your own policy: a deterministic strategy in a few lines, run like the shipped baselines.

Subclass :class:`Policy` and write ``decide``: it gets a read-only :class:`MarketView`
(the clock, prices as of the clock, the portfolio, helpers such as ``max_units``) and
returns the orders it wants::

    class BuyTheFirst(ttg_lab.Policy):
        def decide(self, market):
            if market.positions:
                return []
            symbol = market.symbols[0]
            return [ttg_lab.Order("buy", symbol, market.max_units(symbol))]

    run = lab.start_run(BuyTheFirst, start="2025-06-10", end="2025-07-10")

Every order goes through the same gate, broker and ledger as any agent's, on the direct
path (orders placed directly) and the chat path (the same decisions as tool calls over
MCP). A policy keeps no state between steps, so a resumed run decides exactly as an
uninterrupted one. The shipped baselines are policies too; all are found in one
registry by AI model id: ``baseline/<name>`` for the shipped ones, ``policy/<name>``
for yours (see :func:`register_policy`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import numpy as np

from ttg_lab.agents.params import ParamSpec
from ttg_lab.broker.costs import CostModel, max_affordable
from ttg_lab.engine.context import RunContext
from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.registry import Registry

BASELINE_PREFIX = "baseline/"
POLICY_PREFIX = "policy/"


@dataclass(frozen=True)
class Order:
    """An order a policy wants placed: ``buy``, ``sell``, ``short`` or ``cover``."""

    action: str
    symbol: str
    quantity: float


@dataclass
class Decision:
    """A policy's orders for one step, and why (kept as the run's reasoning)."""

    orders: list[Order] = field(default_factory=list)
    analysis: str = ""
    rationale: str = ""
    seen: dict[str, Any] = field(default_factory=dict)


class MarketView:
    """What a policy may see at a step: nothing later than the clock, nothing it could
    change (cash and positions are copies)."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx

    @property
    def clock(self) -> datetime:
        """The start of the current bar (decisions are taken at its open)."""
        return self._ctx.clock

    @property
    def step(self) -> int:
        """The step's index in the run, from 0."""
        return self._ctx.step_index

    @property
    def seed(self) -> int:
        """The run's seed, for reproducible randomness."""
        return self._ctx.seed

    @property
    def symbols(self) -> list[str]:
        """The model's tickers, sorted."""
        return sorted(self._ctx.tickers)

    @property
    def fractional(self) -> bool:
        """Whether the market trades fractions of a unit."""
        return self._ctx.market.fractional

    @property
    def costs(self) -> CostModel:
        """The run's cost model (fill prices with slippage, fees)."""
        return self._ctx.costs

    @property
    def cash(self) -> float:
        return self._ctx.portfolio.cash

    @property
    def positions(self) -> dict[str, float]:
        """Units held per symbol (negative: short)."""
        return dict(self._ctx.portfolio.positions)

    def quantity(self, symbol: str) -> float:
        return self._ctx.portfolio.quantity(symbol)

    @property
    def equity(self) -> float:
        """Cash plus positions valued at today's opens (else the last closes)."""
        return self._ctx.equity_now()

    def open(self, symbol: str) -> float | None:
        """Today's open of ``symbol`` (None: no bar now)."""
        return self._ctx.view.open(symbol)

    def closes(self, symbol: str, lookback: int) -> np.ndarray:
        """The last ``lookback`` closes of ``symbol`` before the clock, oldest first."""
        return self._ctx.view.closes(symbol, lookback)

    def last_close(self, symbol: str) -> float | None:
        return self._ctx.view.last_close(symbol)

    @property
    def prices(self) -> dict[str, float]:
        """Today's opens of the tickers that have a bar now. Size orders with these (the
        close is not known at the decision, even when orders fill at the close)."""
        prices = {}
        for symbol in self.symbols:
            price = self._ctx.view.open(symbol)
            if price is not None and price > 0:
                prices[symbol] = price
        return prices

    def max_units(self, symbol: str, budget: float | None = None) -> float:
        """The most units of ``symbol`` that ``budget`` (all the cash when None) buys at
        today's open, costs included (whole units unless the market is fractional)."""
        price = self.open(symbol)
        if price is None or price <= 0:
            return 0.0
        cash = self.cash if budget is None else min(budget, self.cash)
        return max_affordable(cash, price, self.costs, self.fractional)


class Policy:
    """A deterministic strategy. Subclass it and write :meth:`decide`; optionally set
    ``description`` (its plan, one sentence) and ``params`` (a
    :class:`~ttg_lab.agents.params.Param` per parameter, validated for the model and
    given to the policy as ``self.p``)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[ParamSpec] = {}

    def __init__(self, **parameters: Any) -> None:
        self.p = parameters

    def plan(self) -> str:
        """The strategy in one sentence, with its parameters."""
        settings = ", ".join(f"{k}={v}" for k, v in self.p.items())
        text = self.description or f"Policy {type(self).__name__}"
        return text + (f" ({settings})" if settings else "")

    def decide(self, market: MarketView) -> list[Order] | Decision:
        """The orders for this step (a :class:`Decision` to say why, too)."""
        raise NotImplementedError(f"{type(self).__name__} must define decide(self, market)")

    def step(self, ctx: RunContext) -> Decision:
        """The decision at the context's step, as the agents take it (a test policy that
        needs the tools themselves may override this instead of ``decide``)."""
        decided = self.decide(MarketView(ctx))
        if isinstance(decided, Decision):
            return decided
        orders = list(decided)
        if not all(isinstance(o, Order) for o in orders):
            raise ValidationError(
                f"{type(self).__name__}.decide must return Orders or a Decision, got {decided!r}"
            )
        shown = ", ".join(f"{o.action} {o.symbol} x{o.quantity:g}" for o in orders)
        return Decision(orders=orders, rationale=shown or "no orders")


POLICIES: Registry[type[Policy]] = Registry("policy", unknown=NotFoundError)
"""Every policy by AI model id: the shipped baselines and the ones registered here."""


def register_policy(name: str, cls: type[Policy]) -> str:
    """Make ``cls`` the policy of AI model id ``policy/<name>`` in this process (again:
    the new class replaces the old, as a notebook cell run twice means); returns the id.
    A run of it resumed in another process needs it registered there too."""
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise ValidationError(f"a policy must be a subclass of ttg_lab.Policy, got {cls!r}")
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise ValidationError(f"a policy name must be non-empty without '/', got {name!r}")
    ai_model_id = POLICY_PREFIX + name
    POLICIES.register(ai_model_id, cls, replace=True)
    return ai_model_id


def is_policy(ai_model_id: str) -> bool:
    """Whether ``ai_model_id`` names a policy (shipped or yours), not an LLM."""
    return ai_model_id.startswith((BASELINE_PREFIX, POLICY_PREFIX))


def policy_class(ai_model_id: str) -> type[Policy]:
    """The policy behind a ``baseline/<name>`` or ``policy/<name>`` id."""
    if ai_model_id.startswith(POLICY_PREFIX) and ai_model_id not in POLICIES:
        raise NotFoundError(
            f"policy {ai_model_id!r} is not registered in this process: run "
            f"ttg_lab.register_policy({ai_model_id.removeprefix(POLICY_PREFIX)!r}, YourPolicy) "
            "first (a run of it resumed elsewhere needs it registered there too)"
        )
    if ai_model_id not in POLICIES:
        known = ", ".join(n for n in POLICIES.names() if n.startswith(BASELINE_PREFIX))
        raise NotFoundError(f"unknown baseline {ai_model_id!r}; baselines: {known}")
    return POLICIES.get(ai_model_id)
