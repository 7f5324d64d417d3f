"""``ttg-lab run``, ``resume``, ``runs``, ``replay`` and ``metrics``: runs followed with a
progress bar and summed up in a table."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from ttg_lab import options
from ttg_lab.cli.context import DATE_HELP, LabContext, LazyChoice, LazyHelp, pass_ctx
from ttg_lab.cli.output import clear_errors, console, exit_unless, print_frame
from ttg_lab.formatting import llm_cost_text, money, percent
from ttg_lab.processes import stop_signals

if TYPE_CHECKING:
    import pandas as pd

    from ttg_lab.engine.events import RunEvent
    from ttg_lab.run import Experiment, Run


def follow(handle: Run, label: str, stop: Callable[[], None] | None = None) -> str:
    """Show a progress bar for a running run until it ends; returns its status. Stopping
    the command (Ctrl-C, SIGINT, SIGTERM) calls ``stop`` (default: stop this run), and the
    run ends ``stopped`` at a step boundary, resumable."""
    info = handle.info
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[equity]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(
            label, total=info.steps_total, completed=info.steps_done, equity=""
        )

        def on_event(event: RunEvent) -> None:
            if event.kind == "step":  # a forward run's total grows with its calendar
                done, total = event.data["done"], event.data["total"]
                progress.update(
                    task,
                    completed=done,
                    total=max(done, total),
                    equity=f"equity {event.data['equity']:,.2f}",
                )
            elif event.kind == "skipped":
                progress.console.print(f"step {event.step_index}: {event.message}", markup=False)
            elif event.kind == "error":
                progress.console.print(f"[red]{event.message}[/red]")

        unsubscribe = handle.subscribe(on_event)
        try:
            with stop_signals():
                status = handle.wait()
        except KeyboardInterrupt:
            (stop or handle.stop)()
            status = handle.wait()
        finally:
            unsubscribe()
    return status


def run_summary(handles: list[Run]) -> pd.DataFrame:
    """A row per run: its figures and LLM spend (None when unknown, with its waste)."""
    from ttg_lab.llm.spend import run_llm_cost

    rows = []
    for handle in handles:
        info = handle.info
        ledger = handle.ledger()
        spend = run_llm_cost(handle.store, info.id)
        rows.append(
            {
                "model": info.model,
                "run": info.run_number,
                "status": info.status,
                "final_value": info.final_value,
                "return": info.final_return,
                "max_drawdown": info.max_drawdown,
                "trades": info.total_trades,
                "fees": float(ledger["fees"].sum()) if len(ledger) else 0.0,
                "llm_cost": spend.usd,
                "wasted_llm_cost": info.wasted_llm_cost if spend.known else None,
            }
        )
    import pandas as pd

    return pd.DataFrame(rows)


SUMMARY_FORMATS: dict[str, Callable[..., str]] = {
    "final_value": money,
    "return": percent,
    "max_drawdown": percent,
    "fees": money,
    "llm_cost": llm_cost_text,
    "wasted_llm_cost": llm_cost_text,
}


def budget_options(command: Callable[..., None]) -> Callable[..., None]:
    """The LLM caps a run (or a resume) takes: ``--max-cost-usd`` and ``--max-tokens``."""
    command = click.option(
        "--max-tokens",
        type=int,
        default=None,
        help="stop the run before its LLM calls could use more tokens (prompt + completion; "
        "default: setting llm.max_tokens)",
    )(command)
    return click.option(
        "--max-cost-usd",
        type=float,
        default=None,
        help="stop the run before its LLM calls could cost more (USD; default: setting "
        "llm.max_cost_usd)",
    )(command)


def period_options(command: Callable[..., None]) -> Callable[..., None]:
    """What a run (or a gap's runs) trades over and how: ``--mode``, ``--start``,
    ``--end``, ``--costs`` and ``--fill``."""
    for option in reversed(
        (
            click.option(
                "--mode", type=LazyChoice(lambda: options.MODES), default="daily", show_default=True
            ),
            click.option(
                "--start", default=None, help=f"first day, {DATE_HELP} (default: start of the data)"
            ),
            click.option(
                "--end", default=None, help=f"last day, {DATE_HELP} (default: end of the data)"
            ),
            click.option(
                "--costs",
                default="default",
                show_default=True,
                cls=LazyHelp,
                lazy_help=lambda: f"a cost preset: {', '.join(options.COST_PRESETS)}",
            ),
            click.option(
                "--fill",
                type=LazyChoice(lambda: options.FILL_POLICIES),
                default="open",
                show_default=True,
            ),
        )
    ):
        command = option(command)
    return command


@click.command()
@click.argument("model")
@period_options
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--path",
    type=LazyChoice(lambda: options.AGENT_PATHS),
    default="chat",
    show_default=True,
    help="chat: the LLM path (chat model + MCP tools); direct: baselines call the tools directly",
)
@budget_options
@click.option(
    "--repeats",
    type=int,
    default=None,
    help="run MODEL this many times over the same period (seeds SEED, SEED+1, ...) as one "
    "experiment",
)
@click.option("--name", default="", help="the experiment's name (with --repeats)")
@click.option(
    "--forward",
    is_flag=True,
    help="trade forward from the next bar as the provider releases them (on the wall clock; "
    "Ctrl-C stops it at a step boundary, `ttg-lab resume` catches up what it missed)",
)
@click.option("--until", default=None, help="with --forward: the last day to trade, YYYY-MM-DD")
@click.option(
    "--provider",
    default=None,
    help="with --forward: the data provider to poll (alphavantage, ccxt:binance, eastmoney; "
    "default: the one the market's bars were fetched from)",
)
@click.option(
    "--provider-url", default=None, help="with --forward: the provider's base URL (a mirror)"
)
@click.option(
    "--missed",
    type=LazyChoice(lambda: _missed_choices()),
    default=None,
    help="with --forward: what resume does with bars missed while the run was down: decide "
    "each as of its own time (default) or skip it (recorded without a decision)",
)
@click.option(
    "--masked",
    is_flag=True,
    help="mask what the model sees: pseudonyms for tickers and company names, scaled prices, "
    "dates shifted by 28 or 56 years (chat path; the ledger and metrics stay real)",
)
@click.option(
    "--estimate",
    is_flag=True,
    help="print the predicted LLM calls, tokens and cost (and the budget caps) and run nothing",
)
@pass_ctx
def run(
    obj: LabContext,
    model: str,
    mode: str,
    start: str | None,
    end: str | None,
    costs: str,
    fill: str,
    seed: int,
    path: str,
    max_cost_usd: float | None,
    max_tokens: int | None,
    repeats: int | None,
    name: str,
    forward: bool,
    until: str | None,
    provider: str | None,
    provider_url: str | None,
    missed: str | None,
    masked: bool,
    estimate: bool,
) -> None:
    """Run MODEL over a period, with a progress bar and a summary (with --forward: forward
    from the next bar; with --estimate: only predict what its LLM calls would spend)."""
    with clear_errors():
        lab = obj.lab()
        arguments: dict[str, Any] = dict(
            mode=mode,
            start=start,
            end=end,
            costs=costs,
            fill=fill,
            seed=seed,
            path=path,
            max_cost_usd=max_cost_usd,
            max_tokens=max_tokens,
        )
        given = {"until": until, "provider": provider, "provider_url": provider_url}
        given |= {"missed": missed}
        arguments |= {k: v for k, v in given.items() if v is not None}
        if forward:
            arguments["forward"] = True
        if masked:
            arguments["masked"] = True
        if estimate:
            console.print(str(lab.estimate(model, **arguments)), markup=False)
            return
        if repeats is not None:
            follow_experiment(lab.start_run(model, **arguments, repeats=repeats, name=name))
            return
        handle = lab.start_run(model, **arguments)
        info = handle.info
        period = f"{info.start:%Y-%m-%d} .. {info.end:%Y-%m-%d}"
        if forward:
            period = f"forward from {info.start:%Y-%m-%d %H:%M}, until {until or 'stopped'}"
        flags = ", masked" if info.masked else ""
        console.print(f"run {handle.id}: {info.model} #{info.run_number} ({mode}, {period}{flags})")
        status = follow(handle, info.model)
        print_frame(run_summary([handle]), "result", SUMMARY_FORMATS)
        exit_unless(status == "completed")


def _missed_choices() -> tuple[str, ...]:
    from ttg_lab.runs.options import MISSED

    return MISSED


def follow_experiment(experiment: Experiment) -> None:
    """Print the experiment and its runs, follow each run to its end, sum them up; exit
    non-zero unless every repeat completed."""
    info = experiment.info
    console.print(
        f"experiment {experiment.id}: {info.model} x{info.repeats} ({info.mode}, "
        f"{info.start:%Y-%m-%d} .. {info.end:%Y-%m-%d}, seeds {info.seed}.."
        f"{info.seed + info.repeats - 1})"
    )
    for run in experiment.runs:
        console.print(f"run {run.id}: #{run.info.run_number} seed {run.info.snapshot.seed}")
    try:  # stopping the command stops every repeat, between two followed runs too
        with stop_signals():
            for run in experiment.runs:
                status = follow(run, f"run {run.id}", stop=experiment.stop)
                console.print(f"run {run.id}: {status}")
    except KeyboardInterrupt:
        experiment.stop()
        for run in experiment.runs:
            console.print(f"run {run.id}: {run.wait()}")
    print_frame(run_summary(list(experiment.runs)), "result", SUMMARY_FORMATS)
    exit_unless(experiment.status == "completed")


@click.command()
@click.argument("run_id", type=int)
@budget_options
@pass_ctx
def resume(
    obj: LabContext, run_id: int, max_cost_usd: float | None, max_tokens: int | None
) -> None:
    """Continue RUN_ID from its last committed step (with new LLM caps, if given)."""
    with clear_errors():
        handle = obj.lab().run(run_id).resume(max_cost_usd=max_cost_usd, max_tokens=max_tokens)
        status = follow(handle, f"run {run_id}")
        print_frame(run_summary([handle]), "result", SUMMARY_FORMATS)
        exit_unless(status == "completed")


@click.command()
@click.argument("model", required=False)
@pass_ctx
def runs(obj: LabContext, model: str | None) -> None:
    """List runs (of MODEL, or all)."""
    with clear_errors():
        frame = obj.lab().runs(model).table()
        print_frame(
            frame, "runs", {"final_value": money, "final_return": percent, "max_drawdown": percent}
        )


@click.command()
@click.argument("run_id", type=int)
@pass_ctx
def replay(obj: LabContext, run_id: int) -> None:
    """Re-run RUN_ID from its recorded LLM calls (no network) and compare the ledgers."""
    with clear_errors():
        lab = obj.lab()
        handle = lab.run(run_id).replay()
        status = follow(handle, f"replay of run {run_id}")
        print_frame(run_summary([lab.run(run_id), handle]), "original and replay", SUMMARY_FORMATS)
        same = ledger_key(lab.run(run_id)).equals(ledger_key(handle))
        console.print("ledgers identical" if same else "[red]ledgers differ[/red]")
        exit_unless(status == "completed" and same)


def ledger_key(handle: Run) -> pd.DataFrame:
    """The parts of a ledger two equal runs share (not database ids)."""
    from ttg_lab.engine.ledger import REPRODUCED_COLUMNS

    return handle.ledger()[REPRODUCED_COLUMNS].reset_index(drop=True)


@click.command("metrics")
@click.argument("run_id", type=int)
@pass_ctx
def metrics_cmd(obj: LabContext, run_id: int) -> None:
    """Every metric of RUN_ID (see the README's metrics reference)."""
    with clear_errors():
        for key, value in obj.lab().run(run_id).metrics().items():
            console.print(f"{key:<24} {'' if value is None else value}", highlight=False)
