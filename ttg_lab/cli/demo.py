"""``ttg-lab demo``: every baseline over the shipped NASDAQ-100 period, compared."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ttg_lab.cli.context import LabContext, pass_ctx
from ttg_lab.cli.output import clear_errors, print_frame
from ttg_lab.cli.runs import SUMMARY_FORMATS, follow, run_summary
from ttg_lab.errors import TTGLabError

if TYPE_CHECKING:
    from ttg_lab.lab import Lab
    from ttg_lab.models import ModelInfo


DEMO_PERIOD = ("2025-06-10", "2025-10-30")
DEMO_CASH = 100_000.0
"""Enough for whole shares of every NASDAQ-100 name at equal weight (some trade above $1,000)."""
DEMO_MODELS: list[dict[str, Any]] = [
    {"name": "demo buy and hold QQQ", "ai_model_id": "baseline/buy_and_hold", "tickers": ["QQQ"]},
    {"name": "demo buy and hold", "ai_model_id": "baseline/buy_and_hold"},
    {"name": "demo momentum", "ai_model_id": "baseline/momentum"},
    {"name": "demo mean reversion", "ai_model_id": "baseline/mean_reversion"},
    {"name": "demo random", "ai_model_id": "baseline/random"},
    {"name": "demo cash", "ai_model_id": "baseline/cash"},
]


def ensure_model(lab: Lab, spec: dict[str, Any]) -> ModelInfo:
    """The demo model of ``spec``, created on first use."""
    try:
        return lab.models.get(spec["name"])
    except TTGLabError:
        return lab.models.create(**spec, initial_cash=DEMO_CASH)


@click.command()
@pass_ctx
def demo(obj: LabContext) -> None:
    """Run every baseline over the shipped NASDAQ-100 period and compare them."""
    with clear_errors():
        lab = obj.lab()
        handles = []
        for spec in DEMO_MODELS:
            model = ensure_model(lab, spec)
            handle = lab.start_run(model, mode="daily", start=DEMO_PERIOD[0], end=DEMO_PERIOD[1])
            follow(handle, model.signature)
            handles.append(handle)
        print_frame(
            run_summary(handles),
            f"Baselines on NASDAQ-100, {DEMO_PERIOD[0]} .. {DEMO_PERIOD[1]}, "
            f"${DEMO_CASH:,.0f} each, default costs (1 bp commission + 2 bp slippage)",
            SUMMARY_FORMATS,
        )
