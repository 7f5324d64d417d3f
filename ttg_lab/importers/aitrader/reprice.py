"""Imported AI-Trader runs re-priced under a cost model (the default one by default).

AI-Trader traded without fees or slippage, so its runs are booked under the ``zero`` cost
model and their own figures flatter them next to runs of this lab. :func:`reprice_run`
replays an imported run's ledger under a cost model, derived from the stored run (nothing
is written): the same fills at the same quantities, each dearer by its slippage and fees
(:func:`~ttg_lab.broker.costs.repriced_values`), and the figures recomputed by the same
metric code as every run's.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ttg_lab.broker.costs import COST_PRESETS, BookedFill, CostModel, repriced_values
from ttg_lab.engine.ledger import LEDGER_COLUMNS
from ttg_lab.engine.reader import equity_frame, ledger_frame, read_snapshot
from ttg_lab.engine.snapshot import RunSnapshot
from ttg_lab.errors import ValidationError
from ttg_lab.metrics.compute import compute_metrics, periods_per_year
from ttg_lab.store.database import Store

REPRICE_COLUMNS = ["step_index", "action", "quantity", "fill_price", "fees", "status"]
"""The ledger's columns a re-pricing reads."""


@dataclass(frozen=True)
class Repriced:
    """A zero-cost run's figures had its fills paid ``cost_model``'s costs."""

    cost_model: str
    final_value: float
    total_return: float
    sharpe: float | None
    extra_costs: float  # slippage and fees the book would have paid
    unpriced_fills: int  # fills without a price (nothing to slip): left as booked


def reprice(
    snap: RunSnapshot, steps: pd.DataFrame, ledger: pd.DataFrame, costs: CostModel | None = None
) -> Repriced:
    """The run of ``snap`` (booked under zero costs, as imports are), its committed
    ``steps`` and ``ledger`` re-priced under ``costs`` (default: the ``default`` preset).
    Raises ValidationError for a run priced otherwise or with no steps."""
    costs = costs or COST_PRESETS["default"]
    if snap.costs != COST_PRESETS["zero"]:
        raise ValidationError(
            f"a run priced under the {snap.costs.name} cost model cannot be re-priced: "
            "only a zero-cost book (an imported run) can"
        )
    if steps.empty:
        raise ValidationError("a run without steps cannot be re-priced")
    filled = ledger[ledger["status"] == "filled"]
    priced = filled[filled["fill_price"].notna()]
    columns = ("step_index", "action", "quantity", "fill_price", "fees")
    fills = [
        BookedFill(int(step), str(action), float(quantity), float(price), float(fees))
        for step, action, quantity, price, fees in zip(
            *(priced[c].tolist() for c in columns), strict=True
        )
    ]
    own = steps["equity"].astype(float).tolist()
    values = repriced_values(own, fills, costs)
    equity = pd.Series(values, index=pd.DatetimeIndex(steps["ts"]), dtype=float)
    periods = periods_per_year(snap.model.market, snap.interval)
    no_trades = pd.DataFrame(columns=LEDGER_COLUMNS)  # only the equity's figures are read
    figures = compute_metrics(equity, snap.initial_cash, no_trades, periods)
    return Repriced(
        cost_model=costs.name,
        final_value=float(figures["final_value"]),
        total_return=float(figures["total_return"]),
        sharpe=figures["sharpe"],
        extra_costs=own[-1] - values[-1],
        unpriced_fills=len(filled) - len(priced),
    )


def reprice_run(store: Store, run_id: int, costs: CostModel | None = None) -> Repriced:
    """:func:`reprice` of stored run ``run_id``."""
    ledger = ledger_frame(store, run_id, REPRICE_COLUMNS)
    return reprice(read_snapshot(store, run_id), equity_frame(store, run_id), ledger, costs)
