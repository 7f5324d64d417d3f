"""``ttg-lab profile`` and ``settings``: your trading profile and the global settings."""

from __future__ import annotations

import json

import click

from ttg_lab.cli.context import LabContext, parse_params, pass_ctx
from ttg_lab.cli.output import clear_errors, console


@click.group()
def profile() -> None:
    """Your trading profile: limits that apply to all of your models."""


@profile.command("show")
@pass_ctx
def profile_show(obj: LabContext) -> None:
    with clear_errors():
        for key, value in obj.lab().profile.show().items():
            console.print(f"{key}: {value}")


@profile.command("set")
@click.argument("pairs", nargs=-1, required=True)
@pass_ctx
def profile_set(obj: LabContext, pairs: tuple[str, ...]) -> None:
    """Set profile fields: key=value ..."""
    with clear_errors():
        obj.lab().profile.update(**parse_params(pairs))
        console.print("profile saved")


@profile.command("reset")
@pass_ctx
def profile_reset(obj: LabContext) -> None:
    """Forget your profile: no limits of your own bind your runs."""
    with clear_errors():
        obj.lab().profile.reset()
        console.print("profile reset to the defaults")


@click.group()
def settings() -> None:
    """Global settings (admins): rule defaults and ceilings, platform options."""


@settings.command("show")
@pass_ctx
def settings_show(obj: LabContext) -> None:
    with clear_errors():
        for key, value in sorted(obj.lab().settings.all().items()):
            console.print(f"{key}: {json.dumps(value)}")


@settings.command("set")
@click.argument("key")
@click.argument("value")
@pass_ctx
def settings_set(obj: LabContext, key: str, value: str) -> None:
    """Set KEY to VALUE (JSON), e.g. rules.ceilings '{"max_position_pct": 25}'."""
    with clear_errors():
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise click.BadParameter(f"VALUE must be JSON, got {value!r}") from None
        obj.lab().settings.set(key, parsed)
        console.print(f"{key} saved")
