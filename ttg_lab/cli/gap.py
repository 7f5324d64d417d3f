"""``ttg-lab gap``: the memorisation gap of a model, started, followed and judged.

``ttg-lab gap MODEL --start --end --repeats N`` (short for ``ttg-lab gap run MODEL ...``)
runs MODEL unmasked and masked, N repeats each with the same seeds, and prints the gap;
``ttg-lab gap show ID`` prints a stored gap again and ``ttg-lab gap list`` lists them. A
command group rather than a flag of ``ttg-lab run``: a gap is two experiments with a
result of its own to show later, and none of ``run``'s forward, replay or masked options
applies to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ttg_lab.cli.context import LabContext, pass_ctx
from ttg_lab.cli.output import clear_errors, console, exit_unless, print_frame
from ttg_lab.cli.runs import SUMMARY_FORMATS, budget_options, follow, period_options, run_summary
from ttg_lab.formatting import percent
from ttg_lab.processes import stop_signals

if TYPE_CHECKING:
    from ttg_lab.memorisation import MemorisationGap


class _RunByDefault(click.Group):
    """A group whose arguments, unless they start with a command's name (or ask for the
    group's help), are ``run``'s: its MODEL and options in any order."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("gap", cls=_RunByDefault)
def gap() -> None:
    """The memorisation gap: MODEL unmasked minus masked over one period, with repeats
    (`ttg-lab gap MODEL --start ... --end ... --repeats N`), a lower bound."""


@gap.command("run")
@click.argument("model")
@period_options
@click.option("--repeats", type=int, default=3, show_default=True, help="runs in each arm")
@click.option("--seed", type=int, default=0, show_default=True, help="the first repeat's seed")
@budget_options
@click.option("--name", default="", help="the gap's name")
@pass_ctx
def run_gap(
    obj: LabContext,
    model: str,
    start: str | None,
    end: str | None,
    repeats: int,
    mode: str,
    costs: str,
    fill: str,
    seed: int,
    max_cost_usd: float | None,
    max_tokens: int | None,
    name: str,
) -> None:
    """Run MODEL unmasked and masked (REPEATS runs each, seeds SEED..), follow every run,
    print the gap; exit 1 unless every run completed."""
    with clear_errors():
        arguments: dict[str, Any] = dict(
            costs=costs, fill=fill, seed=seed, max_cost_usd=max_cost_usd, max_tokens=max_tokens
        )
        found = obj.lab().memorisation_gap(
            model, start, end, mode, repeats=repeats, name=name, **arguments
        )
        arm = found.unmasked.info
        console.print(
            f"memorisation gap {found.id}: {arm.model} x{arm.repeats} unmasked (experiment "
            f"{found.unmasked.id}) and masked (experiment {found.masked.id}), {arm.mode}, "
            f"{arm.start:%Y-%m-%d} .. {arm.end:%Y-%m-%d}, seeds {arm.seed}.."
            f"{arm.seed + arm.repeats - 1}",
            markup=False,
        )
        runs = [(label, run) for label, e in _arms(found) for run in e.runs]
        try:  # stopping the command stops every run of both arms
            with stop_signals():
                for label, run in runs:
                    status = follow(run, f"{label} run {run.id}", stop=found.stop)
                    console.print(f"{label} run {run.id}: {status}")
        except KeyboardInterrupt:
            found.stop()
            for label, run in runs:
                console.print(f"{label} run {run.id}: {run.wait()}")
        print_frame(run_summary([run for _, run in runs]), "runs", SUMMARY_FORMATS)
        _print_result(found)
        exit_unless(found.status == "completed")


def _arms(found: MemorisationGap) -> list[tuple[str, Any]]:
    return [("unmasked", found.unmasked), ("masked", found.masked)]


@gap.command("show")
@click.argument("gap_id", type=int)
@pass_ctx
def show(obj: LabContext, gap_id: int) -> None:
    """The gap GAP_ID: unmasked - masked in return and Sharpe, interval, verdict."""
    with clear_errors():
        _print_result(obj.lab().gap(gap_id))


@gap.command("list")
@pass_ctx
def list_gaps(obj: LabContext) -> None:
    """Your memorisation gaps, newest first."""
    import pandas as pd

    with clear_errors():
        rows = []
        for found in obj.lab().gaps():
            arm = found.unmasked.info
            rows.append(
                {
                    "gap": found.id,
                    "name": arm.name,
                    "model": arm.model,
                    "mode": arm.mode,
                    "start": f"{arm.start:%Y-%m-%d}",
                    "end": f"{arm.end:%Y-%m-%d}",
                    "repeats": arm.repeats,
                    "status": found.status,
                    "memorisation_gap": found.result().text(),
                }
            )
        if not rows:
            console.print("no memorisation gaps")
            return
        print_frame(pd.DataFrame(rows), "memorisation gaps")


def _print_result(found: MemorisationGap) -> None:
    """The gap's two figures as a table, its verdict and why it is a lower bound."""
    import pandas as pd

    result = found.result()
    rows = []
    for gap_of in (result.total_return, result.sharpe):
        scale = percent if gap_of.measure == "total_return" else _number
        rows.append(
            {
                "measure": gap_of.measure,
                "unmasked": scale(gap_of.unmasked_mean),
                "masked": scale(gap_of.masked_mean),
                "gap": scale(gap_of.difference),
                "ci_low": scale(gap_of.ci_low),
                "ci_high": scale(gap_of.ci_high),
                "p_value": _number(gap_of.p_value),
                "cohens_d": _number(gap_of.effect_size),
                "runs": f"{gap_of.n_pairs} pairs"
                if gap_of.paired
                else f"{gap_of.n_unmasked} + {gap_of.n_masked} unpaired",
                "verdict": gap_of.verdict,
            }
        )
    title = f"memorisation gap {found.id} (unmasked - masked, {result.confidence:.0%} interval)"
    print_frame(pd.DataFrame(rows), title)
    console.print(f"verdict: {result.verdict} - {result.text()}", markup=False)
    console.print(f"note: {result.lower_bound}", markup=False)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:+.3f}"
