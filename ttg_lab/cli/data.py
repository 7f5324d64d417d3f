"""``ttg-lab init``, ``data`` and ``import``: the store, market data, news and other
platforms' runs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

import click

from ttg_lab import options
from ttg_lab.cli.context import LabContext, LazyChoice, LazyHelp, pass_ctx
from ttg_lab.cli.output import clear_errors, console, print_frame
from ttg_lab.formatting import money, percent

if TYPE_CHECKING:
    from ttg_lab.market.fetch import FetchProgress, FetchReport


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


def _universes() -> str:
    from ttg_lab.market.universes import UNIVERSES

    return ", ".join(f"{u.name} ({u.market})" for u in UNIVERSES.values())


def _providers() -> str:
    from ttg_lab.market.providers import PROVIDERS

    return ", ".join(PROVIDERS.names()) + " (ccxt:<exchange>, e.g. ccxt:binance)"


def _print_reports(reports: list[FetchReport]) -> None:
    """Each fetch's summary, its failed symbols one per line; exit 1 if any failed."""
    from rich.markup import escape

    for report in reports:
        console.print(escape(report.summary()), highlight=False)
        for note in dict.fromkeys(n for r in report.results for n in r.notes):
            console.print(f"  note: {escape(note)}", highlight=False)
        for result in report.failed:
            console.print(f"  [red]{escape(result.symbol)}:[/red] {escape(str(result.error))}")
        if report.stopped:
            console.print(f"  not fetched (stopped): {', '.join(report.stopped)}")
        if report.pending:
            console.print(f"  {len(report.pending)} bar(s) still open: not stored")
    if not all(r.ok for r in reports):
        sys.exit(1)


@contextmanager
def _progress() -> Iterator[Callable[[FetchProgress], None]]:
    """A progress bar over a fetch's symbols whose line says what it does (and waits for)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("fetching", total=None)

        def show(event: FetchProgress) -> None:
            bar.update(task, total=event.total, completed=event.done, description=event.message)
            if event.waiting:
                console.print(event.message, highlight=False)

        yield show


@data.command("fetch")
@click.option("--provider", required=True, cls=LazyHelp, lazy_help=_providers)
@click.option("--market", required=True, cls=LazyHelp, lazy_help=lambda: ", ".join(options.MARKETS))
@click.option("--symbols", default=None, help="comma-separated symbols (or --universe)")
@click.option("--universe", default=None, cls=LazyHelp, lazy_help=_universes)
@click.option(
    "--interval", type=LazyChoice(lambda: options.INTERVALS), default="1d", show_default=True
)
@click.option("--start", default=None, help="first day (default: 30 days before the end)")
@click.option("--end", default=None, help="last day (default: today in the market's time zone)")
@click.option("--base-url", default=None, help="a mirror, proxy or test server of the provider")
@click.option(
    "--replace", is_flag=True, help="overwrite stored bars the provider answers otherwise"
)
@pass_ctx
def data_fetch(
    obj: LabContext,
    provider: str,
    market: str,
    symbols: str | None,
    universe: str | None,
    interval: str,
    start: str | None,
    end: str | None,
    base_url: str | None,
    replace: bool,
) -> None:
    """Fetch bars from a provider, check them and merge the complete ones (new bars added,
    identical skipped, differing ones refused unless --replace), waiting out its rate
    limits; answers are kept under data/cache, so a rerun resumes where a fetch stopped."""
    with clear_errors():
        lab = obj.lab()
        chosen = None if symbols is None else [s for s in symbols.split(",") if s.strip()]
        with _progress() as show:
            report = lab.data.fetch(
                provider, market, chosen, universe, interval, start, end, base_url, replace, show
            )
        _print_reports([report])


@data.command("update")
@click.option("--provider", default=None, help="only the datasets fetched from this provider")
@click.option("--base-url", default=None, help="a mirror or test server of --provider")
@pass_ctx
def data_update(obj: LabContext, provider: str | None, base_url: str | None) -> None:
    """Bring every dataset fetched from a provider up to its last complete bar."""
    with clear_errors():
        lab = obj.lab()
        with _progress() as show:
            reports = lab.data.update(provider, base_url, show)
        if not reports:
            console.print("no dataset was fetched from a provider: nothing to update")
        _print_reports(reports)


@data.command("fetch-news")
@click.option("--symbols", default="", help="comma-separated symbols (default: all news)")
@click.option("--start", default=None, help="first day, UTC (default: 30 days before the end)")
@click.option("--end", default=None, help="last day, UTC (default: now)")
@click.option("--provider", default="alphavantage", show_default=True)
@click.option("--base-url", default=None, help="a mirror, proxy or test server of the provider")
@pass_ctx
def data_fetch_news(
    obj: LabContext,
    symbols: str,
    start: str | None,
    end: str | None,
    provider: str,
    base_url: str | None,
) -> None:
    """Fetch dated news into the search tool's store: publish times kept in UTC, items
    without one stored but never served, known links skipped."""
    from rich.markup import escape

    with clear_errors():
        chosen = [s.strip() for s in symbols.split(",") if s.strip()]
        report = obj.lab().data.fetch_news(chosen, start, end, provider, base_url)
        console.print(escape(report.summary()), highlight=False)


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
