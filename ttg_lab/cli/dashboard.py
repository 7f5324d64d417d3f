"""``ttg-lab dashboard``: serve the dashboard with Voila."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ttg_lab.cli.context import LabContext, pass_ctx
from ttg_lab.cli.output import clear_errors

if TYPE_CHECKING:
    pass


@click.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8866, show_default=True)
@click.option(
    "--token",
    envvar="TTG_LAB_DASHBOARD_TOKEN",
    default=None,
    help="required when serving beyond 127.0.0.1",
)
@pass_ctx
def dashboard_cmd(obj: LabContext, host: str, port: int, token: str | None) -> None:
    """Prepare the embedded default and serve the dashboard with Voila (use --db for PostgreSQL)."""
    from ttg_lab.config import resolve_settings
    from ttg_lab.dashboard import serve as serve_dashboard

    with clear_errors():
        sys.exit(serve_dashboard(resolve_settings(obj.db_url).db_url, host, port, token))
