"""``ttg-lab batch``: an experiment file as papermill notebooks, or a rerun of one run."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from ttg_lab.cli.context import LabContext, pass_ctx
from ttg_lab.cli.output import clear_errors, console, print_frame
from ttg_lab.formatting import money, percent

if TYPE_CHECKING:
    from ttg_lab.market.fetch import FetchProgress


@click.command("batch")
@click.argument("experiment", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--scheduler", default=None, help="a Dask scheduler, tcp://HOST:PORT (default: local pool)"
)
@click.option("--concurrency", type=int, default=None, help="override the experiment's concurrency")
@click.option(
    "--rerun", "rerun_id", type=int, default=None, help="re-execute a finished run's parameters"
)
@pass_ctx
def batch_cmd(
    obj: LabContext,
    experiment: str | None,
    scheduler: str | None,
    concurrency: int | None,
    rerun_id: int | None,
) -> None:
    """Run an EXPERIMENT file (a grid of runs) as papermill notebooks, or --rerun one run."""
    from ttg_lab.batch.executors import make_executor
    from ttg_lab.batch.experiment import load_experiment
    from ttg_lab.batch.rerun import rerun
    from ttg_lab.batch.runner import BatchRunner

    with clear_errors():
        lab = obj.lab()
        if rerun_id is not None:
            outcome = rerun(lab, rerun_id)
            console.print(
                f"run {rerun_id} re-executed as run {outcome['run_id']}: "
                f"{'identical ledger' if outcome['identical'] else 'ledgers DIFFER'}"
            )
            sys.exit(0 if outcome["identical"] else 1)
        if experiment is None:
            raise click.UsageError("give an EXPERIMENT file or --rerun RUN_ID")
        spec = load_experiment(experiment)
        if concurrency:
            spec.concurrency = concurrency
        runner = BatchRunner(
            spec,
            lab.config.db_url,
            lab.config.reports_dir,
            make_executor(scheduler),
            user=lab.user.username,
        )
        todo = len(spec.runs) - sum(
            1 for s in spec.runs if runner.state().get(s.key, {}).get("status") == "done"
        )
        where = f"Dask {scheduler}" if scheduler else "this machine"
        console.print(
            f"experiment {spec.name}: {len(spec.runs)} runs, {todo} to do, "
            f"{spec.concurrency} at a time on {where}"
        )
        if todo and spec.data:
            console.print(f"fetching {len(spec.data)} data entr(ies) before the runs")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(spec.name, total=todo)

            def on_result(result: dict[str, Any]) -> None:
                progress.advance(task)
                if result["status"] != "done":
                    progress.console.print(f"[red]{result['key']} failed: {result['error']}[/red]")

            def on_fetch(event: FetchProgress) -> None:
                if event.waiting:  # a rate limit's wait, said as it starts
                    progress.console.print(event.message, highlight=False)

            summary = runner.run(on_result, on_fetch)
        for report in summary.fetches:
            console.print(report.summary(), highlight=False)
        print_frame(
            summary.frame().drop(columns=["key"]),
            f"experiment {spec.name}",
            {"final_value": money, "return": percent},
        )
        console.print(
            f"{len(summary.done)} done, {len(summary.failed)} failed, {summary.skipped} skipped; "
            f"summary: {summary.report}"
        )
