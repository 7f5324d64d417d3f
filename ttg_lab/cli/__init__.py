"""The ``ttg-lab`` command line: every command is a call into the lab.

One module per command group; :mod:`~ttg_lab.cli.context` opens the lab and reads typed
input, :mod:`~ttg_lab.cli.output` prints (redacted), turns errors into one line and sets
exit codes. ``ttg_lab.cli:main`` is the entry point.
"""

from __future__ import annotations

import click

from ttg_lab.cli import (
    audit,
    batch,
    chat,
    dashboard,
    data,
    demo,
    diff,
    gap,
    leaderboard,
    llm,
    mcp_services,
    models,
    report,
    rules,
    runs,
    settings,
    users,
)
from ttg_lab.cli.context import LabContext


@click.group()
@click.option("--db", "db_url", envvar="TTG_LAB_DB_URL", help="SQLAlchemy URL of the store.")
@click.option(
    "--user",
    default=None,
    help=(
        "act as this user (default: $TTG_LAB_USER, else who you are: the JupyterHub user, "
        "else the local admin); acting as someone else needs an admin"
    ),
)
@click.version_option(package_name="ttg-lab")
@click.pass_context
def main(ctx: click.Context, db_url: str | None, user: str | None) -> None:
    """TTG Lab: research workbench for LLM trading agents."""
    ctx.obj = LabContext(db_url, user)


for _command in (
    data.init,
    data.data,
    data.import_group,
    models.models,
    runs.run,
    runs.resume,
    runs.runs,
    runs.replay,
    runs.metrics_cmd,
    demo.demo,
    report.report,
    dashboard.dashboard_cmd,
    batch.batch_cmd,
    chat.chat_cmd,
    leaderboard.leaderboard_cmd,
    rules.rules,
    diff.diff_cmd,
    audit.audit,
    gap.gap,
    settings.profile,
    settings.settings,
    users.users,
    mcp_services.mcp,
    llm.llm,
):
    main.add_command(_command)

__all__ = ["main"]
