"""Trading costs: what an order really costs at the simulated price.

Slippage moves the fill price against the trader; fees are charged per order. Which
price an order fills at (the bar's open or its close) is :mod:`ttg_lab.broker.fills`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ttg_lab.errors import ValidationError


@dataclass(frozen=True)
class CostModel:
    """Per-order costs.

    fees = max(min_per_order, notional * commission_bps / 1e4 + quantity * per_share)
    fill price = reference * (1 + slippage_bps / 1e4) when buying or covering,
                 reference * (1 - slippage_bps / 1e4) when selling or shorting.
    """

    commission_bps: float = 0.0
    per_share: float = 0.0
    min_per_order: float = 0.0
    slippage_bps: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not math.isfinite(value) or value < 0:
                raise ValidationError(
                    f"cost model {name} must be a finite number >= 0, got {value}"
                )
        if self.slippage_bps >= 10_000:
            raise ValidationError("cost model slippage_bps must be below 10000 (100%)")

    def fees(self, quantity: float, price: float) -> float:
        if quantity <= 0:
            return 0.0
        variable = quantity * price * self.commission_bps / 1e4 + quantity * self.per_share
        return max(self.min_per_order, variable)

    def fill_price(self, action: str, reference: float) -> float:
        sign = 1.0 if action in ("buy", "cover") else -1.0
        return reference * (1.0 + sign * self.slippage_bps / 1e4)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def describe(self) -> str:
        """Its fields in words: ``1 bp commission, 2 bp slippage``."""
        parts = [f"{self.commission_bps:g} bp commission", f"{self.slippage_bps:g} bp slippage"]
        if self.per_share:
            parts.append(f"{self.per_share:g} per share")
        if self.min_per_order:
            parts.append(f"minimum {self.min_per_order:g} per order")
        return ", ".join(parts)

    @property
    def preset(self) -> str | None:
        """The name of the preset it equals (``default``, ``zero``...), if any."""
        return next((k for k, v in COST_PRESETS.items() if v == self), None)

    @property
    def name(self) -> str:
        """Its preset's name, else ``custom (<fields>)``."""
        return self.preset or f"custom ({self.describe()})"


@dataclass(frozen=True)
class BookedFill:
    """A fill as a ledger booked it: at ``price`` (the reference, before any slippage of
    the cost model being replayed), paying ``fees``."""

    step_index: int
    action: str  # buy | sell | short | cover
    quantity: float
    price: float
    fees: float


def extra_cost(fill: BookedFill, costs: CostModel) -> float:
    """How much more ``fill`` costs under ``costs`` than it was booked at: the slippage
    of its quantity away from the booked price, plus the fees, minus the fees paid."""
    filled = costs.fill_price(fill.action, fill.price)
    slippage = fill.quantity * abs(filled - fill.price)
    return slippage + costs.fees(fill.quantity, filled) - fill.fees


def repriced_values(values: list[float], fills: list[BookedFill], costs: CostModel) -> list[float]:
    """A book's value at each step (``values[i]`` at step ``i``) had the same fills been
    priced under ``costs``: the same quantities, so the same holdings, and less cash by
    each fill's :func:`extra_cost` from its step on. Affordability is not re-checked."""
    extra = [0.0] * len(values)
    for fill in fills:
        if not 0 <= fill.step_index < len(values):
            raise ValidationError(
                f"fill at step {fill.step_index} outside the book's {len(values)} steps"
            )
        extra[fill.step_index] += extra_cost(fill, costs)
    out, paid = [], 0.0
    for value, more in zip(values, extra, strict=True):
        paid += more
        out.append(value - paid)
    return out


COST_PRESETS: dict[str, CostModel] = {
    "zero": CostModel(),
    "default": CostModel(commission_bps=1.0, slippage_bps=2.0),
    "ibkr-fixed": CostModel(per_share=0.005, min_per_order=1.0, slippage_bps=2.0),
}
"""Named cost models. ``default`` (1 bp commission + 2 bp slippage) is what runs use
unless told otherwise; ``zero`` turns costs off."""


def resolve_cost_model(costs: str | CostModel | dict[str, Any] | None) -> CostModel:
    """A cost model from a preset name, a dict of fields, or a CostModel."""
    if costs is None:
        return COST_PRESETS["default"]
    if isinstance(costs, CostModel):
        return costs
    if isinstance(costs, str):
        try:
            return COST_PRESETS[costs]
        except KeyError:
            known = ", ".join(COST_PRESETS)
            raise ValidationError(f"unknown cost preset {costs!r}; known: {known}") from None
    unknown = set(costs) - set(CostModel.__dataclass_fields__)
    if unknown:
        raise ValidationError(f"unknown cost model field(s): {', '.join(sorted(unknown))}")
    return CostModel(**{k: float(v) for k, v in costs.items()})


def max_affordable(cash: float, reference: float, costs: CostModel, fractional: bool) -> float:
    """Largest quantity whose cost plus fees fits in ``cash`` when buying at ``reference``."""
    price = costs.fill_price("buy", reference)
    if cash <= 0 or price <= 0:
        return 0.0
    per_unit = price * (1 + costs.commission_bps / 1e4) + costs.per_share
    qty = cash / per_unit
    if costs.fees(qty, price) > qty * (per_unit - price) + 1e-12:  # the minimum fee binds
        qty = max(0.0, (cash - costs.min_per_order) / price)
    qty = math.floor(qty) if not fractional else math.floor(qty * 1e8) / 1e8
    while qty > 0 and qty * price + costs.fees(qty, price) > cash:
        qty = qty - 1 if not fractional else math.floor(qty * (1 - 1e-9) * 1e8) / 1e8
    return max(qty, 0.0)
