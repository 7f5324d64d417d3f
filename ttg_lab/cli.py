"""The ``ttg-lab`` command line: every command is a call into the lab."""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ttg_lab.dates import FORMATS
from ttg_lab.errors import TTGLabError, ValidationError
from ttg_lab.formatting import money, percent
from ttg_lab.mcp_services.manager import DEFAULT_PORTS, ServiceStatus, serve
from ttg_lab.mcp_services.names import SERVICES
from ttg_lab.secrets import redact

if TYPE_CHECKING:  # the heavy modules load when a command needs them, so start-up is quick
    import pandas as pd

    from ttg_lab.engine.events import RunEvent
    from ttg_lab.lab import Lab
    from ttg_lab.models import ModelInfo
    from ttg_lab.runs.handle import RunHandle


class MaskedStdout(io.StringIO):
    """Standard output with every secret masked (see :func:`ttg_lab.secrets.redact`):
    nothing the command line echoes, stored text included, shows a key."""

    def write(self, text: str) -> int:
        sys.stdout.write(redact(text))
        return len(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return sys.stdout.isatty()

    def fileno(self) -> int:
        return sys.stdout.fileno()


console = Console(file=MaskedStdout(), width=None if sys.stdout.isatty() else 160)

DEMO_PERIOD = ("2025-06-10", "2025-10-30")
DEMO_CASH = 100_000.0
DATE_HELP = f"{FORMATS}, exchange-local; a UTC offset such as +02:00 is converted"
"""Enough for whole shares of every NASDAQ-100 name at equal weight (some trade above $1,000)."""
DEMO_MODELS: list[dict[str, Any]] = [
    {"name": "demo buy and hold QQQ", "ai_model_id": "baseline/buy_and_hold", "tickers": ["QQQ"]},
    {"name": "demo buy and hold", "ai_model_id": "baseline/buy_and_hold"},
    {"name": "demo momentum", "ai_model_id": "baseline/momentum"},
    {"name": "demo mean reversion", "ai_model_id": "baseline/mean_reversion"},
    {"name": "demo random", "ai_model_id": "baseline/random"},
    {"name": "demo cash", "ai_model_id": "baseline/cash"},
]


def print_frame(
    frame: pd.DataFrame, title: str = "", formats: Mapping[str, Callable[..., str]] | None = None
) -> None:
    """A DataFrame as a rich table."""
    formats = formats or {}
    table = Table(title=title or None)
    for column in frame.columns:
        table.add_column(
            str(column), justify="right" if frame[column].dtype.kind in "if" else "left"
        )
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            fmt = formats.get(str(column))
            if value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("")
            else:
                cells.append(redact(fmt(value) if fmt else str(value)))  # before wrapping
        table.add_row(*cells)
    console.print(table)


@contextmanager
def clear_errors() -> Iterator[None]:
    """Show errors as one line (secrets masked, as all output) and exit 1, never as a
    traceback."""
    try:
        yield
    except TTGLabError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)
    except Exception as exc:  # a provider or driver error: one masked line, no traceback
        console.print(f"[red]error:[/red] {type(exc).__name__}: {exc}", highlight=False)
        sys.exit(1)


class LabContext:
    """Opens the lab lazily so ``--help`` needs no database."""

    def __init__(self, db_url: str | None, user: str | None = None) -> None:
        self.db_url = db_url
        self.user = user
        self._lab: Lab | None = None

    def lab(self, init: bool = True) -> Lab:
        from ttg_lab.lab import open_lab

        if self._lab is None:
            self._lab = open_lab(self.db_url, init=init, user=self.user)
        return self._lab


pass_ctx = click.make_pass_decorator(LabContext)


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


@main.command()
@pass_ctx
def init(obj: LabContext) -> None:
    """Create the store and load the shipped market data and news."""
    with clear_errors():
        lab = obj.lab(init=False)
        loaded = lab.init()
        for name, rows in loaded.items():
            unit = {"news": "items", "aitrader_runs": "runs"}.get(name, "bars")
            console.print(f"loaded {name}: {rows:,} {unit}" if rows else f"{name}: up to date")
        url = lab.store.engine.url.render_as_string(hide_password=True)
        console.print(f"store ready at {url}", highlight=False)


@main.group()
def data() -> None:
    """Market data and news."""


@data.command("list")
@pass_ctx
def data_list(obj: LabContext) -> None:
    """List loaded datasets."""
    with clear_errors():
        frame = obj.lab().data.list()
        print_frame(frame.drop(columns=["symbols", "fingerprint"], errors="ignore"), "datasets")


@data.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--market", required=True, help="us, cn or crypto")
@click.option("--format", "fmt", default="auto", help="alphavantage, aitrader-jsonl, csv or auto")
@click.option("--name", default=None, help="name of this load (default: file name)")
@click.option(
    "--label",
    type=click.Choice(["start", "end"]),
    default="start",
    show_default=True,
    help="the file stamps intraday bars by their start (Alpha Vantage) or their end "
    "(AI-Trader's A-share hourly files)",
)
@click.option("--replace", is_flag=True, help="overwrite stored bars that differ from the file's")
@pass_ctx
def data_load(
    obj: LabContext,
    path: str,
    market: str,
    fmt: str,
    name: str | None,
    label: Literal["start", "end"],
    replace: bool,
) -> None:
    """Merge a price file into the store: new bars added, identical ones skipped, bars
    that differ from the stored ones refused (listed) unless --replace."""
    with clear_errors():
        result = obj.lab().data.load(
            path, market, format=fmt, name=name, label=label, replace=replace
        )
        console.print(result.summary(), highlight=False)
        for conflict in result.conflicts if result.replaced else ():
            console.print(f"  replaced {conflict}", highlight=False)
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


@data.command("news")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", default="auto", help="alphavantage, aitrader-log, jsonl or auto")
@pass_ctx
def data_news(obj: LabContext, path: str, fmt: str) -> None:
    """Import dated news for the search tool (undated items are never served)."""
    with clear_errors():
        count = obj.lab().data.load_news(path, format=fmt)
        console.print(f"loaded {count:,} news items from {path}")


@main.group("import")
def import_group() -> None:
    """Import other platforms' run outputs as completed runs."""


@import_group.command("aitrader")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--market", type=click.Choice(["us", "cn", "crypto"]), default=None)
@click.option("--name-suffix", default="", help="appended to each model's name and signature")
@click.option(
    "--report-errors",
    is_flag=True,
    help="leave malformed lines out, import the rest and list them (default: stop, import none)",
)
@pass_ctx
def import_aitrader_command(
    obj: LabContext, path: str, market: str | None, name_suffix: str, report_errors: bool
) -> None:
    """Import AI-Trader runs at PATH: a model folder, an agent_data* folder or their parent."""
    from pathlib import Path

    from rich.markup import escape

    from ttg_lab.importers.aitrader import import_aitrader

    with clear_errors():
        lab = obj.lab()
        report = import_aitrader(
            lab.store,
            Path(path),
            owner_id=lab.user.id,
            market=market,
            name_suffix=name_suffix,
            on_error="report" if report_errors else "raise",
        )
        for result in report.results:
            if result.status == "failed":
                console.print(f"[red]{escape(result.folder)}: not imported[/red]")
            else:
                skipped = ", already imported" if result.status == "skipped" else ""
                drift = result.reconciliation.get("max_cash_drift", 0.0)
                console.print(
                    f"run {result.run_id}: {result.signature}: {result.bars} bars, "
                    f"{result.trades} trades, final value {money(result.final_value)} "
                    f"({percent(result.final_return or 0.0)}), cash drift {money(drift)}{skipped}",
                    highlight=False,
                )
            for problem in result.problems:
                console.print(f"  [yellow]problem:[/yellow] {escape(str(problem))}")
        console.print(
            f"{len(report)} run(s) imported, "
            f"{sum(r.status == 'skipped' for r in report.results)} already there, "
            f"{len(report.problems)} problem(s)"
        )


@main.group()
def models() -> None:
    """AI trading models."""


@models.command("list")
@pass_ctx
def models_list(obj: LabContext) -> None:
    """List models."""
    with clear_errors():
        print_frame(obj.lab().models.frame(), "models", {"cash": money})


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """key=value pairs; a value is read as JSON (numbers, true/false, lists, objects)
    when it parses, else kept as text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--param")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


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


def follow(handle: RunHandle, label: str) -> str:
    """Show a progress bar for a running run until it ends; returns its status."""
    info = handle.info()
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
            label, total=info["steps_total"], completed=info["steps_done"], equity=""
        )

        def on_event(event: RunEvent) -> None:
            if event.kind == "step":
                progress.update(
                    task, completed=event.data["done"], equity=f"equity {event.data['equity']:,.2f}"
                )
            elif event.kind == "error":
                progress.console.print(f"[red]{event.message}[/red]")

        unsubscribe = handle.subscribe(on_event)
        try:
            status = handle.wait()
        except KeyboardInterrupt:
            handle.stop()
            status = handle.wait()
        finally:
            unsubscribe()
    return status


def exit_unless(completed: bool) -> None:
    """The exit status of a run command: 0 only when the run completed (and, for a
    replay, reproduced its source); 1 when it failed, stopped or was taken over."""
    if not completed:
        sys.exit(1)


def run_summary(handles: list[RunHandle]) -> pd.DataFrame:
    rows = []
    for handle in handles:
        info = handle.info()
        ledger = handle.ledger()
        rows.append(
            {
                "model": info["model"],
                "run": info["run_number"],
                "status": info["status"],
                "final_value": info["final_value"],
                "return": info["final_return"],
                "max_drawdown": info["max_drawdown"],
                "trades": info["total_trades"],
                "fees": float(ledger["fees"].sum()) if len(ledger) else 0.0,
                "llm_cost": info["llm_cost"],
                "wasted_llm_cost": info["wasted_llm_cost"],
            }
        )
    import pandas as pd

    return pd.DataFrame(rows)


SUMMARY_FORMATS: dict[str, Callable[..., str]] = {
    "final_value": money,
    "return": percent,
    "max_drawdown": percent,
    "fees": money,
    "llm_cost": money,
    "wasted_llm_cost": money,
}


@main.command()
@click.argument("model")
@click.option(
    "--mode", type=click.Choice(["daily", "intraday"]), default="daily", show_default=True
)
@click.option("--start", default=None, help=f"first day, {DATE_HELP} (default: start of the data)")
@click.option("--end", default=None, help=f"last day, {DATE_HELP} (default: end of the data)")
@click.option("--costs", default="default", show_default=True, help="zero, default or ibkr-fixed")
@click.option("--fill", type=click.Choice(["open", "close"]), default="open", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--path",
    type=click.Choice(["chat", "direct"]),
    default="chat",
    show_default=True,
    help="chat: the LLM path (chat model + MCP tools); direct: baselines call the tools directly",
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
) -> None:
    """Run MODEL over a period, with a progress bar and a summary."""
    with clear_errors():
        lab = obj.lab()
        handle = lab.start_run(
            model, mode=mode, start=start, end=end, costs=costs, fill=fill, seed=seed, path=path
        )
        info = handle.info()
        console.print(
            f"run {handle.id}: {info['model']} #{info['run_number']} ({mode}, "
            f"{info['start']:%Y-%m-%d} .. {info['end']:%Y-%m-%d})"
        )
        status = follow(handle, info["model"])
        print_frame(run_summary([handle]), "result", SUMMARY_FORMATS)
        exit_unless(status == "completed")


@main.command()
@click.argument("run_id", type=int)
@pass_ctx
def resume(obj: LabContext, run_id: int) -> None:
    """Continue RUN_ID from its last committed step."""
    with clear_errors():
        handle = obj.lab().resume_run(run_id)
        status = follow(handle, f"run {run_id}")
        print_frame(run_summary([handle]), "result", SUMMARY_FORMATS)
        exit_unless(status == "completed")


@main.command()
@click.argument("model", required=False)
@pass_ctx
def runs(obj: LabContext, model: str | None) -> None:
    """List runs (of MODEL, or all)."""
    with clear_errors():
        frame = obj.lab().runs(model)
        print_frame(
            frame, "runs", {"final_value": money, "final_return": percent, "max_drawdown": percent}
        )


def ensure_model(lab: Lab, spec: dict[str, Any]) -> ModelInfo:
    """The demo model of ``spec``, created on first use."""
    try:
        return lab.models.get(spec["name"])
    except TTGLabError:
        return lab.models.create(**spec, initial_cash=DEMO_CASH)


@main.command()
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


@main.command()
@click.argument("run_id", type=int)
@pass_ctx
def replay(obj: LabContext, run_id: int) -> None:
    """Re-run RUN_ID from its recorded LLM calls (no network) and compare the ledgers."""
    with clear_errors():
        lab = obj.lab()
        handle = lab.replay_run(run_id)
        status = follow(handle, f"replay of run {run_id}")
        print_frame(run_summary([lab.run(run_id), handle]), "original and replay", SUMMARY_FORMATS)
        same = ledger_key(lab.run(run_id)).equals(ledger_key(handle))
        console.print("ledgers identical" if same else "[red]ledgers differ[/red]")
        exit_unless(status == "completed" and same)


@main.command()
@click.argument("run_ids", nargs=-1, type=int, required=True)
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="file to write (default: reports/)"
)
@pass_ctx
def report(obj: LabContext, run_ids: tuple[int, ...], out: str | None) -> None:
    """Write an HTML report of RUN_ID (several: a comparison) and print its path."""
    from ttg_lab.reports import comparison_report, run_report  # plotly only when needed

    with clear_errors():
        ids = list(dict.fromkeys(run_ids))
        lab = obj.lab()
        path = run_report(lab, ids[0], out) if len(ids) == 1 else comparison_report(lab, ids, out)
        click.echo(str(path))


def ledger_key(handle: RunHandle) -> pd.DataFrame:
    """The parts of a ledger two equal runs share (not database ids)."""
    from ttg_lab.engine.orders import REPRODUCED_COLUMNS

    return handle.ledger()[REPRODUCED_COLUMNS].reset_index(drop=True)


@main.command("dashboard")
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


@main.command("batch")
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
            lab.settings.db_url,
            lab.settings.reports_dir,
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

            summary = runner.run(on_result)
        print_frame(
            summary.frame().drop(columns=["key"]),
            f"experiment {spec.name}",
            {"final_value": money, "return": percent},
        )
        console.print(
            f"{len(summary.done)} done, {len(summary.failed)} failed, {summary.skipped} skipped; "
            f"summary: {summary.report}"
        )


@main.command("chat")
@click.argument("run_id", type=int)
@click.option("--question", "-q", multiple=True, help="ask and exit (repeat for several)")
@click.option("--model", default=None, help="an LLM for the analyst (default: offline)")
@pass_ctx
def chat_cmd(obj: LabContext, run_id: int, question: tuple[str, ...], model: str | None) -> None:
    """Talk to the strategy analyst about RUN_ID (an empty line or Ctrl-D ends)."""
    with clear_errors():
        analyst = obj.lab().analyst(run_id, model=model)
        console.print(f"{analyst.mode} analyst on run {run_id}; conversation {analyst.session_id}")
        questions = iter(question) if question else None
        while True:
            if questions is not None:
                text = next(questions, "")
            else:
                try:
                    text = input("you> ")
                except EOFError:
                    text = ""
            if not text.strip():
                break
            for piece in analyst.ask_stream(text):
                console.print(piece, end="", highlight=False, markup=False)
            console.print()
            for suggestion in analyst.last_answer.suggestions:
                console.print(
                    f"  suggestion {suggestion.id}: {suggestion.name} "
                    f"{suggestion.parameters} (effect {suggestion.effect:+,.2f})"
                )


@main.command("leaderboard")
@click.option("--market", default=None, help="us, cn or crypto")
@click.option("--mode", type=click.Choice(["daily", "intraday"]), default=None)
@click.option("--start", default=None, help=f"runs starting on or after this day ({FORMATS})")
@click.option("--end", default=None, help=f"runs ending on or before this day ({FORMATS})")
@click.option("--sort", default="sharpe", show_default=True)
@pass_ctx
def leaderboard_cmd(
    obj: LabContext,
    market: str | None,
    mode: str | None,
    start: str | None,
    end: str | None,
    sort: str,
) -> None:
    """Models ranked by their runs, against buy-and-hold of the benchmark."""
    with clear_errors():
        board = obj.lab().leaderboard(market=market, mode=mode, start=start, end=end, sort=sort)
        if board.empty:
            console.print("no completed runs match")
            return
        columns = [
            "model",
            "market",
            "mode",
            "runs",
            "total_return",
            "sharpe",
            "max_drawdown",
            "benchmark",
            "benchmark_return",
            "vs_benchmark",
            "mean_return",
            "mean_ci_low",
            "mean_ci_high",
            "llm_cost",
        ]
        ratio: dict[str, Callable[..., str]] = {"sharpe": lambda v: f"{v:.2f}"}
        pct: dict[str, Callable[..., str]] = dict.fromkeys(
            [
                "total_return",
                "max_drawdown",
                "benchmark_return",
                "mean_return",
                "mean_ci_low",
                "mean_ci_high",
            ],
            percent,
        )
        print_frame(board[columns], "leaderboard", {**pct, **ratio, "llm_cost": money})


@main.command("metrics")
@click.argument("run_id", type=int)
@pass_ctx
def metrics_cmd(obj: LabContext, run_id: int) -> None:
    """Every metric of RUN_ID (see the README's metrics reference)."""
    with clear_errors():
        for key, value in obj.lab().metrics(run_id).items():
            console.print(f"{key:<24} {'' if value is None else value}", highlight=False)


@main.group()
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
        frame = obj.lab().attribution(run_id)
        print_frame(
            frame,
            f"rule attribution of run {run_id}",
            {"final_value": money, "final_without": money, "pnl_effect": money},
        )


@main.group()
def profile() -> None:
    """Your trading profile: limits that apply to all of your models."""


@profile.command("show")
@pass_ctx
def profile_show(obj: LabContext) -> None:
    with clear_errors():
        for key, value in obj.lab().rules.profile().items():
            console.print(f"{key}: {value}")


@profile.command("set")
@click.argument("pairs", nargs=-1, required=True)
@pass_ctx
def profile_set(obj: LabContext, pairs: tuple[str, ...]) -> None:
    """Set profile fields: key=value ..."""
    with clear_errors():
        obj.lab().rules.update_profile(**parse_params(pairs))
        console.print("profile saved")


@main.group()
def users() -> None:
    """Users, roles, sign-ups and the sign-up allow-list (admins, except sign-up)."""


@users.command("list")
@pass_ctx
def users_list(obj: LabContext) -> None:
    with clear_errors():
        frame = obj.lab().users.list()
        print_frame(frame[["username", "email", "display_name", "role", "approved"]], "Users")


@users.command("signup")
@click.argument("email")
@click.argument("display_name")
@click.option("--username", default=None)
@pass_ctx
def users_signup(obj: LabContext, email: str, display_name: str, username: str | None) -> None:
    """Ask to join: approved at once when allow-listed, else pending an admin."""
    with clear_errors():
        user = obj.lab().users.sign_up(email, display_name, username)
        state = "approved" if user.approved else "waiting for an admin's approval"
        console.print(f"{user.username} ({user.email}): {state}", highlight=False)


@users.command("add")
@click.argument("email")
@click.argument("display_name")
@click.option("--role", type=click.Choice(["user", "admin"]), default="user", show_default=True)
@click.option("--username", default=None)
@pass_ctx
def users_add(
    obj: LabContext, email: str, display_name: str, role: str, username: str | None
) -> None:
    with clear_errors():
        user = obj.lab().users.add(email, display_name, role, username)
        console.print(f"added {user.username} ({user.email}) as {user.role}", highlight=False)


@users.command("approve")
@click.argument("user")
@click.option("--role", type=click.Choice(["user", "admin"]), default=None)
@pass_ctx
def users_approve(obj: LabContext, user: str, role: str | None) -> None:
    with clear_errors():
        approved = obj.lab().users.approve(user, role)
        console.print(f"{approved.username} is approved as {approved.role}", highlight=False)


@users.command("reject")
@click.argument("user")
@pass_ctx
def users_reject(obj: LabContext, user: str) -> None:
    with clear_errors():
        obj.lab().users.reject(user)
        console.print(f"{user}'s sign-up is rejected", highlight=False)


@users.command("role")
@click.argument("user")
@click.argument("role", type=click.Choice(["user", "admin"]))
@pass_ctx
def users_role(obj: LabContext, user: str, role: str) -> None:
    with clear_errors():
        obj.lab().users.set_role(user, role)
        console.print(f"{user} is now {role}", highlight=False)


@users.command("allow")
@click.argument("pattern")
@click.option("--role", type=click.Choice(["user", "admin"]), default="user", show_default=True)
@pass_ctx
def users_allow(obj: LabContext, pattern: str, role: str) -> None:
    """Allow-list an email or a whole @domain: their sign-ups are approved at once."""
    with clear_errors():
        obj.lab().users.allow(pattern, role)
        console.print(f"sign-ups from {pattern} are approved as {role}", highlight=False)


@users.command("db-login")
@click.argument("user")
@click.option("--password", prompt=True, hide_input=True, envvar="TTG_LAB_DB_LOGIN_PASSWORD")
@pass_ctx
def users_db_login(obj: LabContext, user: str, password: str) -> None:
    """PostgreSQL: give USER a login that row-level security limits to their own work."""
    with clear_errors():
        url = obj.lab().users.db_login(user, password)
        from sqlalchemy.engine import make_url

        console.print(
            f"created; connect with {make_url(url).render_as_string(hide_password=True)} "
            "and the password you chose",
            highlight=False,
        )


@main.group()
def settings() -> None:
    """Global settings (admins): rule defaults and ceilings, platform options."""


@settings.command("show")
@pass_ctx
def settings_show(obj: LabContext) -> None:
    with clear_errors():
        for key, value in sorted(obj.lab().rules.settings().items()):
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
        obj.lab().rules.set_setting(key, parsed)
        console.print(f"{key} saved")


@main.group()
def mcp() -> None:
    """MCP services (math, search, trade, price) over streamable HTTP."""


def _print_services(statuses: list[ServiceStatus]) -> None:
    rows = [
        {
            "service": s.service,
            "url": s.url,
            "pid": s.pid or "",
            "state": s.state,
            "running": s.running,
            "healthy": s.healthy,
            "tools": ", ".join(s.tools),
        }
        for s in statuses
    ]
    import pandas as pd

    print_frame(pd.DataFrame(rows), "MCP services")


@mcp.command("start")
@click.argument("services", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--base-port", type=int, default=None, help="ports base, base+1.. (default 8101..)")
@click.option("--token", envvar="TTG_LAB_MCP_TOKEN", default=None, help="required off 127.0.0.1")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="seconds to wait for the services to answer",
)
@pass_ctx
def mcp_start(
    obj: LabContext,
    services: tuple[str, ...],
    host: str,
    base_port: int | None,
    token: str | None,
    wait: float,
) -> None:
    """Start SERVICES (default: all four) in the background and wait until they answer."""
    with clear_errors():
        manager = obj.lab().mcp
        ports = {s: base_port + i for i, s in enumerate(SERVICES)} if base_port else None
        started = manager.start(list(services) or None, host=host, ports=ports, token=token)
        names = [s.service for s in started]
        with console.status(f"waiting up to {wait:g} s for {', '.join(names)} to answer"):
            statuses = manager.wait_until_up(names, wait, token)
        _print_services(statuses)
        down = [s for s in statuses if s.state in ("stopped", "unhealthy")]
        starting = [s for s in statuses if s.state == "starting"]
        for s in down:
            console.print(
                f"[red]{s.service} is {s.state}; see its log: {s.log}[/red]", highlight=False
            )
        if starting:
            console.print(
                f"[yellow]still starting after {wait:g} s: "
                f"{', '.join(s.service for s in starting)} (a busy machine can take longer; "
                f"`ttg-lab mcp status` shows when they answer); logs: "
                f"{', '.join(str(s.log) for s in starting)}[/yellow]",
                highlight=False,
            )
        if down or starting:
            sys.exit(1)
        console.print(
            f"{len(statuses)} of {len(statuses)} healthy; clients send "
            f"'Authorization: Bearer <token>' with the token in {manager.token_path}",
            highlight=False,
        )


@mcp.command("stop")
@click.argument("services", nargs=-1)
@pass_ctx
def mcp_stop(obj: LabContext, services: tuple[str, ...]) -> None:
    """Stop SERVICES (default: all)."""
    with clear_errors():
        stopped = obj.lab().mcp.stop(list(services) or None)
        console.print(f"stopped: {', '.join(stopped) or 'none were running'}")


@mcp.command("status")
@pass_ctx
def mcp_status(obj: LabContext) -> None:
    """Show which services run and answer their health check."""
    with clear_errors():
        _print_services(obj.lab().mcp.status())


@mcp.command("serve")
@click.argument("service", type=click.Choice(list(SERVICES)))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="default: the service's standard port")
@click.option("--token", envvar="TTG_LAB_MCP_TOKEN", default=None)
@pass_ctx
def mcp_serve(
    obj: LabContext, service: str, host: str, port: int | None, token: str | None
) -> None:
    """Serve one SERVICE in the foreground (what `mcp start` runs)."""
    with clear_errors():
        lab = obj.lab()
        serve(service, lab.settings.db_url, host, port or DEFAULT_PORTS[service], token, lab.user)


if __name__ == "__main__":
    main()
