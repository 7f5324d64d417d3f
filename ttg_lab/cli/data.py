"""``ttg-lab init``, ``data`` and ``import``: the store, market data, news and other
platforms' runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import click

from ttg_lab import options
from ttg_lab.cli.context import LabContext, LazyChoice, LazyHelp, pass_ctx
from ttg_lab.cli.output import clear_errors, console, print_frame
from ttg_lab.formatting import money, percent

if TYPE_CHECKING:
    pass


@click.command()
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


@click.group()
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
@click.option("--market", required=True, cls=LazyHelp, lazy_help=lambda: ", ".join(options.MARKETS))
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    cls=LazyHelp,
    lazy_help=lambda: ", ".join(options.bar_formats()),
)
@click.option("--name", default=None, help="name of this load (default: file name)")
@click.option(
    "--label",
    type=LazyChoice(lambda: options.BAR_LABELS),
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
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    cls=LazyHelp,
    lazy_help=lambda: ", ".join(options.news_formats()),
)
@pass_ctx
def data_news(obj: LabContext, path: str, fmt: str) -> None:
    """Import dated news for the search tool (undated items are never served)."""
    with clear_errors():
        count = obj.lab().data.load_news(path, format=fmt)
        console.print(f"loaded {count:,} news items from {path}")


@click.group("import")
def import_group() -> None:
    """Import other platforms' run outputs as completed runs."""


@import_group.command("aitrader")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--market", type=LazyChoice(lambda: options.MARKETS), default=None)
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
