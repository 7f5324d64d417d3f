"""Fills: which price an order fills at, what the broker answers, and the market-on-close
orders waiting for theirs.

A market order fills at the decision bar's open by default (``fill="open"``) or at its
close (``fill="close"``, a market-on-close order the agent placed before seeing the
close: it is accepted while the agent decides, filled once the step is over, and reported
to the agent at the next step as a :class:`CloseFill`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ttg_lab.errors import ValidationError

FILL_POLICIES: tuple[str, ...] = ("open", "close")


def check_fill_policy(fill: str) -> str:
    """``fill`` if it names a fill policy, else an error listing them."""
    if fill not in FILL_POLICIES:
        raise ValidationError(f"unknown fill policy {fill!r}; known: {', '.join(FILL_POLICIES)}")
    return fill


@dataclass(frozen=True)
class CloseFill:
    """How a market-on-close order ended at the bar's close: what the agent learns at the
    next step (it was told only "accepted" while deciding)."""

    order_id: str
    action: str
    symbol: str
    requested: float  # the quantity accepted while deciding
    quantity: float  # the quantity filled (0 when refused at the close)
    price: float | None
    fees: float
    status: str  # filled | resized | rejected
    reason: str = ""

    def describe(self) -> str:
        """One line for the agent's next prompt."""
        head = f"{self.action} {self.requested:g} {self.symbol}"
        if self.status == "rejected":
            return f"{head}: refused at the close ({self.reason})"
        assert self.price is not None
        done = f"{head}: filled {self.quantity:g} at {self.price:.4f}, fees {self.fees:.2f}"
        return done + (f" (cut at the close: {self.reason})" if self.status == "resized" else "")


@dataclass(frozen=True)
class Fill:
    """The broker's answer to an accepted order."""

    action: str
    symbol: str
    quantity: float
    price: float
    fees: float

    @property
    def cash_delta(self) -> float:
        sign = 1.0 if self.action in ("buy", "cover") else -1.0
        return -sign * self.quantity * self.price - self.fees


@dataclass(frozen=True)
class PendingOrder:
    """A market-on-close order the gate accepted during the step: it fills at the close of
    the bar, after the agent has decided (see :func:`ttg_lab.engine.orders.fill_at_close`)."""

    order_id: str
    action: str
    symbol: str
    quantity: float
    forced_by: str | None = None
    notes: str = ""  # what the gate said when it accepted it (the rules' cuts)
