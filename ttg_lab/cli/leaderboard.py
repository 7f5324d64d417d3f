"""``ttg-lab leaderboard``: models ranked by their runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ttg_lab import options
from ttg_lab.cli.context import LabContext, LazyChoice, LazyHelp, pass_ctx
from ttg_lab.cli.output import clear_errors, console, print_frame
from ttg_lab.dates import FORMATS
from ttg_lab.formatting import BOARD_FORMATS

if TYPE_CHECKING:
    import pandas as pd


SHOWN_EMPTY = frozenset({"model", "llm_cost"})
"""Columns kept even when empty: an unknown LLM cost reads "unknown", never nothing."""


def _telling(board: pd.DataFrame) -> list[str]:
    """The summary columns that tell something on this board: a terminal is narrow, so a
    column empty in every row (no repeats, nothing re-priced) or a flag no row has (no
    forward run) is left out."""
    return [
        c
        for c in options.LEADERBOARD_SUMMARY
        if c in SHOWN_EMPTY
        or not (board[c].isna().all() or (board[c].dtype == bool and not board[c].any()))
    ]


@click.command("leaderboard")
@click.option("--market", default=None, cls=LazyHelp, lazy_help=lambda: ", ".join(options.MARKETS))
@click.option("--mode", type=LazyChoice(lambda: options.MODES), default=None)
@click.option("--start", default=None, help=f"runs starting on or after this day ({FORMATS})")
@click.option("--end", default=None, help=f"runs ending on or before this day ({FORMATS})")
@click.option(
    "--sort",
    default="sharpe",
    show_default=True,
    cls=LazyHelp,
    lazy_help=lambda: ", ".join(options.LEADERBOARD_SORTS),
)
@click.option(
    "--training-together",
    is_flag=True,
    help="rank runs inside their model's training window (or of unknown cutoff) together "
    "with the runs after it (default: apart)",
)
@pass_ctx
def leaderboard_cmd(
    obj: LabContext,
    market: str | None,
    mode: str | None,
    start: str | None,
    end: str | None,
    sort: str,
    training_together: bool,
) -> None:
    """Models ranked by their runs, against buy-and-hold of the benchmark; runs inside
    their model's training window are flagged and, by default, ranked apart."""
    with clear_errors():
        board = obj.lab().leaderboard(
            market=market,
            mode=mode,
            start=start,
            end=end,
            sort=sort,
            training_apart=not training_together,
        )
        if board.empty:
            console.print("no completed runs match")
            return
        print_frame(board[_telling(board)], "leaderboard", BOARD_FORMATS)
        from ttg_lab.leaderboard import mixed_costs_note

        note = mixed_costs_note(board)
        if note:
            console.print(f"note: the rows were {note}", markup=False)
