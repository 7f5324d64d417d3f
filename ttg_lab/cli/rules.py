"""``ttg-lab rules``: a model's structured rules and what they did to a run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ttg_lab.cli.context import LabContext, parse_params, pass_ctx
from ttg_lab.cli.output import clear_errors, console, print_frame
from ttg_lab.formatting import money

if TYPE_CHECKING:
    pass


@click.group()
def rules() -> None:
    """Structured rules of a model, enforced by the order gate."""


@rules.command("list")
@click.argument("model")
@pass_ctx
def rules_list(obj: LabContext, model: str) -> None:
    """List MODEL's rules."""
    with clear_errors():
        frame = obj.lab().rules.frame(model)
        print_frame(frame.drop(columns=["model_id"], errors="ignore"), f"rules of {model}")


@rules.command("add")
@click.argument("model")
@click.argument("name")
@click.option("--param", "params", multiple=True, required=True, help="limit key=value (repeat)")
@click.option("--category", default="risk", show_default=True)
@click.option("--priority", type=int, default=5, show_default=True)
@click.option("--symbols", default="", help="scope: only these symbols")
@click.option("--exclude", default="", help="scope: not these symbols")
@click.option("--description", default="")
@pass_ctx
def rules_add(
    obj: LabContext,
    model: str,
    name: str,
    params: tuple[str, ...],
    category: str,
    priority: int,
    symbols: str,
    exclude: str,
    description: str,
) -> None:
    """Add rule NAME to MODEL (validated; nothing is saved on a bad value)."""
    with clear_errors():
        scope = {k: v for k, v in (("symbols", symbols), ("exclude_symbols", exclude)) if v}
        rule = obj.lab().rules.add(
            model,
            name,
            parse_params(params),
            category=category,
            priority=priority,
            scope=scope,
            description=description,
        )
        console.print(f"added rule {rule.name!r} to {model}: {rule.parameters}")


@rules.command("remove")
@click.argument("model")
@click.argument("name")
@pass_ctx
def rules_remove(obj: LabContext, model: str, name: str) -> None:
    """Remove rule NAME from MODEL."""
    with clear_errors():
        obj.lab().rules.remove(model, name)
        console.print(f"removed rule {name!r} from {model}")


@rules.command("preset")
@click.argument("model")
@click.argument("preset")
@pass_ctx
def rules_preset(obj: LabContext, model: str, preset: str) -> None:
    """Add the rules of PRESET (conservative, strict) to MODEL."""
    with clear_errors():
        added = obj.lab().rules.apply_preset(model, preset)
        console.print(f"added {len(added)} rule(s) from preset {preset!r}")


@rules.command("attribution")
@click.argument("run_id", type=int)
@pass_ctx
def rules_attribution(obj: LabContext, run_id: int) -> None:
    """What each rule of RUN_ID blocked, resized and forced, and its P&L effect."""
    with clear_errors():
        frame = obj.lab().run(run_id).attribution()
        print_frame(
            frame,
            f"rule attribution of run {run_id}",
            {"final_value": money, "final_without": money, "pnl_effect": money},
        )
