"""``ttg-lab report``: the HTML report of a run, or a comparison of several."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ttg_lab.cli.context import LabContext, pass_ctx
from ttg_lab.cli.output import clear_errors

if TYPE_CHECKING:
    pass


@click.command()
@click.argument("run_ids", nargs=-1, type=int, required=True)
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="file to write (default: reports/)"
)
@pass_ctx
def report(obj: LabContext, run_ids: tuple[int, ...], out: str | None) -> None:
    """Write an HTML report of RUN_ID (several: a comparison) and print its path."""
    from ttg_lab.reports import comparison_report  # plotly only when needed

    with clear_errors():
        ids = list(dict.fromkeys(run_ids))
        lab = obj.lab()
        if len(ids) == 1:
            run = lab.run(ids[0])
            path = run.report(out or run.report_path)
        else:
            path = comparison_report(lab, ids, out)
        click.echo(str(path))
