"""``ttg-lab leaderboard``: models ranked by their runs, one table per group of rows ranked
together, the columns chosen, and the data-snooping tests against buy-and-hold under it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ttg_lab import options
from ttg_lab.cli.context import LabContext, LazyChoice, LazyHelp, pass_ctx
from ttg_lab.cli.output import clear_errors, console, print_frame
from ttg_lab.dates import FORMATS
from ttg_lab.errors import ValidationError
from ttg_lab.formatting import BOARD_FORMATS, is_missing

if TYPE_CHECKING:
    import pandas as pd


KEY = "model"
"""The column every table of a board cut to the terminal's width starts with."""

ALL_COLUMNS = "all"
"""``--columns all``: every column of the board."""

SNOOPING_NAMES = {"spa": "SPA (Hansen)", "stepm": "StepM (Romano-Wolf)"}
"""``--snooping``: Hansen's SPA (is any model better than buy-and-hold?) and Romano and
Wolf's StepM (which models are?)."""


def chosen_columns(text: str | None) -> list[str] | None:
    """The columns ``--columns`` names (comma-separated; ``all``: every one), checked
    against the board's; None for the default summary."""
    if text is None:
        return None
    if text.strip() == ALL_COLUMNS:
        return list(options.LEADERBOARD_COLUMNS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in options.LEADERBOARD_COLUMNS]
    if unknown or not names:
        raise ValidationError(
            f"unknown leaderboard column {', '.join(map(repr, unknown)) or repr(text)}; "
            f"choose from {', '.join(options.LEADERBOARD_COLUMNS)} or {ALL_COLUMNS}"
        )
    return [KEY, *(name for name in names if name != KEY)]


def _fitting(frame: pd.DataFrame, width: int) -> list[list[str]]:
    """The frame's columns cut into tables no wider than ``width`` (each starts with the
    key column), so no cell is wrapped or cut and every column is shown."""
    needs = {}
    for column in frame.columns:
        fmt = BOARD_FORMATS.get(column)
        cells = [fmt(v) if fmt else "" if is_missing(v) else str(v) for v in frame[column]]
        needs[column] = max([len(column), *map(len, cells)]) + 3  # padding, border
    chunks: list[list[str]] = []
    for column in frame.columns:
        if column == KEY:
            continue
        if chunks and sum(needs[c] for c in chunks[-1]) + needs[column] + 1 <= width:
            chunks[-1].append(column)
        else:
            chunks.append([KEY, column])
    return chunks or [[KEY]]


def print_board(
    board: pd.DataFrame,
    columns: list[str] | None,
    training_apart: bool,
    masked_apart: bool,
    width: int,
) -> None:
    """The board as one table per group of rows ranked together, titled with the group;
    a table too wide for ``width`` goes on in a continued table."""
    from ttg_lab.leaderboard import ranked_tables, telling_columns

    for title, rows in ranked_tables(board, training_apart, masked_apart):
        shown = telling_columns(rows, options.LEADERBOARD_SUMMARY) if columns is None else columns
        table = rows[[c for c in shown if c in rows.columns]]
        for i, chunk in enumerate(_fitting(table, width)):
            print_frame(rows[chunk], title + (" (continued)" if i else ""), BOARD_FORMATS)


def snooping_table(
    board: pd.DataFrame, tests: tuple[str, ...], training_apart: bool, masked_apart: bool
) -> pd.DataFrame:
    """Each group's data-snooping tests against buy-and-hold: SPA's p-value of "no model
    beats it" and the models StepM finds better, at 5% family-wise error."""
    import pandas as pd

    from ttg_lab.leaderboard import ranked_tables
    from ttg_lab.metrics.comparisons import ALPHA

    none = f"none shown at {ALPHA:.0%}"
    rows = []
    for title, block in ranked_tables(board, training_apart, masked_apart):
        tested = block[block["spa_p_value"].notna()]
        for test in tests:
            row = {"group": title, "test": SNOOPING_NAMES[test], "models": len(tested)}
            if tested.empty:
                beats = "not tested: under 10 shared bars, or no benchmark"
                rows.append(row | {"models": len(block), "p_value": None, "beats": beats})
            elif test == "spa":
                p = float(tested["spa_p_value"].iloc[0])
                beats = "at least one (SPA does not say which)" if p < ALPHA else none
                rows.append(row | {"p_value": p, "beats": beats})
            else:
                better = [
                    str(m) for m, b in zip(tested[KEY], tested["stepm_beats"], strict=True) if b
                ]
                rows.append(row | {"p_value": None, "beats": ", ".join(better) or none})
    return pd.DataFrame(rows).rename(columns={"beats": "beats buy-and-hold"})


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
@click.option(
    "--masked-together",
    is_flag=True,
    help="rank masked runs together with unmasked ones (default: apart)",
)
@click.option(
    "--across",
    default=None,
    cls=LazyHelp,
    lazy_help=lambda: (
        "rank rows across what is kept apart by default, comma-separated: "
        + ", ".join(options.LEADERBOARD_ACROSS)
    ),
)
@click.option(
    "--snooping",
    type=click.Choice(list(SNOOPING_NAMES)),
    multiple=True,
    help="the data-snooping test against buy-and-hold of each group's models, printed "
    "under the board (spa: is any better? stepm: which are?); may be repeated",
)
@click.option(
    "--columns",
    default=None,
    cls=LazyHelp,
    lazy_help=lambda: (
        f"comma-separated columns, or {ALL_COLUMNS}: "
        + ", ".join(options.LEADERBOARD_COLUMNS)
        + " (default: "
        + ", ".join(options.LEADERBOARD_SUMMARY)
        + ", left out when they say nothing)"
    ),
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
    masked_together: bool,
    across: str | None,
    snooping: tuple[str, ...],
    columns: str | None,
) -> None:
    """Models ranked by their runs against buy-and-hold of the benchmark, one table per
    group (market, mode, period) of rows ranked together; runs inside their model's
    training window are flagged and, by default, ranked apart, as are masked runs."""
    with clear_errors():
        chosen = chosen_columns(columns)  # checked before the board is ranked
        board = obj.lab().leaderboard(
            market=market,
            mode=mode,
            start=start,
            end=end,
            sort=sort,
            training_apart=not training_together,
            masked_apart=not masked_together,
            across=across or False,
            snooping=bool(snooping),
        )
        if board.empty:
            console.print("no completed runs match")
            return
        apart = (not training_together, not masked_together)
        print_board(board, chosen, *apart, console.width)
        tests = tuple(t for t in SNOOPING_NAMES if t in snooping)
        if tests:
            found = snooping_table(board, tests, *apart)
            print_frame(found, "data snooping against buy-and-hold", BOARD_FORMATS)
        from ttg_lab.leaderboard import mixed_costs_note

        note = mixed_costs_note(board)
        if note:
            console.print(f"note: the rows were {note}", markup=False)
