"""``ttg-lab models``: list, create and delete AI trading models."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ttg_lab.cli.context import LabContext, parse_params, pass_ctx
from ttg_lab.cli.output import clear_errors, console, print_frame
from ttg_lab.errors import ValidationError
from ttg_lab.formatting import money

if TYPE_CHECKING:
    pass


@click.group()
def models() -> None:
    """AI trading models."""


@models.command("list")
@pass_ctx
def models_list(obj: LabContext) -> None:
    """List models."""
    with clear_errors():
        print_frame(obj.lab().models.frame(), "models", {"cash": money})


@models.command("create")
@click.argument("name")
@click.option("--ai-model", default="baseline/momentum", show_default=True)
@click.option("--market", default="us", show_default=True)
@click.option("--cash", type=float, default=10_000.0, show_default=True)
@click.option("--tickers", default="", help="comma-separated; empty = the whole market")
@click.option("--param", "params", multiple=True, help="agent parameter key=value (repeat)")
@click.option("--description", default="")
@click.option("--instructions", default="", help="custom instructions for the agent")
@click.option("--rules", default="", help="custom rules text for the agent's prompt")
@pass_ctx
def models_create(
    obj: LabContext,
    name: str,
    ai_model: str,
    market: str,
    cash: float,
    tickers: str,
    params: tuple[str, ...],
    description: str,
    instructions: str,
    rules: str,
) -> None:
    """Create a model."""
    with clear_errors():
        model = obj.lab().models.create(
            name,
            ai_model_id=ai_model,
            market=market,
            initial_cash=cash,
            tickers=tickers,
            parameters=parse_params(params),
            description=description,
            custom_instructions=instructions,
            custom_rules=rules,
        )
        console.print(f"created model {model.signature} (id {model.id})")


@models.command("delete")
@click.argument("model")
@click.option("--yes", is_flag=True, help="confirm: the model's runs are deleted with it")
@pass_ctx
def models_delete(obj: LabContext, model: str, yes: bool) -> None:
    """Delete MODEL with all its runs (refused while one of them is running)."""
    with clear_errors():
        lab = obj.lab()
        info = lab.models.owned(model)
        if not yes:
            raise ValidationError(
                f"deleting {info.signature} deletes its runs too; add --yes to confirm"
            )
        lab.models.delete(info)
        console.print(f"deleted model {info.signature} (id {info.id}) and its runs")
