"""``ttg-lab audit masking RUN``: whether anything real reached a masked run's model."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from ttg_lab.cli.context import LabContext, pass_ctx
from ttg_lab.cli.output import clear_errors, console

LEAKS_SHOWN = 50
"""Findings printed one per line; the rest are counted (``lab.audit_masking`` has all)."""


@click.group("audit")
def audit() -> None:
    """Audits of stored runs."""


@audit.command("masking")
@click.argument("run", type=int)
@pass_ctx
def masking_cmd(obj: LabContext, run: int) -> None:
    """Every real ticker, company name, date and unscaled price found in what masked run
    RUN's model read or wrote (its recorded requests and responses). Exit 1 when any is
    found, 0 when the run is clean."""
    with clear_errors():
        found = obj.lab().audit_masking(run)
    console.print(escape(found.summary()), highlight=False)
    for leak in found.leaks[:LEAKS_SHOWN]:
        console.print(
            f"  {leak.kind} {escape(leak.value)!r} in {escape(leak.where)}", highlight=False
        )
    if len(found.leaks) > LEAKS_SHOWN:
        console.print(
            f"  ... and {len(found.leaks) - LEAKS_SHOWN} more (lab.audit_masking(run).leaks)",
            highlight=False,
        )
    if not found.clean:
        sys.exit(1)
