"""``ttg-lab diff A B``: where two runs' decisions part, and what each parting was worth."""

from __future__ import annotations

import click
from rich.markup import escape

from ttg_lab.cli.context import LabContext, pass_ctx
from ttg_lab.cli.output import clear_errors, console, print_frame
from ttg_lab.formatting import money

STEP_COLUMNS = ["step", "ts", "differs", "orders_a", "orders_b", "pnl_effect"]
"""The table's columns (verdicts and holdings are in ``lab.diff(a, b).frame()``)."""

REASONING_SHOWN = 400
"""Characters of each reasoning entry printed at the first divergence (logs run long)."""


@click.command("diff")
@click.argument("run_a", type=int)
@click.argument("run_b", type=int)
@pass_ctx
def diff_cmd(obj: LabContext, run_a: int, run_b: int) -> None:
    """RUN_A against RUN_B (same market, mode and period): the first divergence with each
    side's reasoning, the steps where orders, gate verdicts or positions differ, and the
    final-value difference the differing decisions explain by counterfactual replay."""
    with clear_errors():
        found = obj.lab().diff(run_a, run_b)
        console.print(
            f"run {run_a} ({escape(found.model_a)}) against run {run_b} "
            f"({escape(found.model_b)}): {found.steps_compared} steps compared, "
            f"{len(found.steps)} differ",
            highlight=False,
        )
        if found.first is None:
            console.print("the runs do not differ: same orders, verdicts and positions")
        else:
            first = found.first
            console.print(f"first divergence: {escape(first.describe())}", highlight=False)
            for run_id, side, notes in (
                (run_a, first.step.a, first.reasoning_a),
                (run_b, first.step.b, first.reasoning_b),
            ):
                orders = "; ".join(map(str, side.orders)) or "no order"
                console.print(f"  run {run_id}: {escape(orders)}", highlight=False)
                for verdict in side.verdicts:
                    console.print(f"    gate: {escape(str(verdict))}", highlight=False)
                for note in notes:
                    text = escape(_shortened(note.content))
                    console.print(f"    {note.type}: {text}", highlight=False)
            print_frame(found.frame()[STEP_COLUMNS], "differing steps", {"pnl_effect": money})
        console.print(
            f"final value: run {run_a} {money(found.final_a)}, run {run_b} "
            f"{money(found.final_b)}, difference {money(found.difference)}\n"
            f"explained by the differing decisions: {money(found.explained)} "
            f"(replayed: run {run_a} {money(found.replayed_a)}, with run {run_b}'s "
            f"decisions {money(found.replayed_with_b)}); unexplained (costs, fills, cash, "
            f"replay gaps): {money(found.unexplained)}",
            highlight=False,
        )
        for caveat in found.caveats:
            console.print(f"note: {escape(caveat)}", highlight=False)


def _shortened(text: str) -> str:
    """A reasoning entry on one line, cut at :data:`REASONING_SHOWN` characters."""
    line = " ".join(text.split())
    if len(line) <= REASONING_SHOWN:
        return line
    return f"{line[:REASONING_SHOWN]}… ({len(line):,} characters; lab.diff(a, b).first has all)"
