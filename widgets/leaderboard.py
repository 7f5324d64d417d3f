"""Leaderboard panel: models ranked by their runs, filterable and sortable, with each
row's group (market, mode, period: the rows it ranks against), the runs and bars behind
it, the Holm-corrected verdict against buy-and-hold with its effect size, PSR, DSR and
MinTRL, its training window (runs inside it ranked apart unless "rank together" is
ticked) and cost flags; a column chooser shows any other column of the board."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
import pandas as pd
import traitlets

from ttg_lab import ValidationError, options
from ttg_lab.formatting import BOARD_FORMATS
from widgets.common import Controller, TableState, show_figure, status_html, table_html

FILTERS = ["market", "mode", "sort", "training_together"]
"""The controller's traits that choose the rows: a change starts over at the first page."""

PANEL_EXTRA = {"group": "rank", "holm_verdict": "cohens_d", "dsr": "min_trl"}
"""Columns the panel shows beyond the summary (it is wider than a terminal), each after
the summary column it follows."""


def panel_columns() -> list[str]:
    """The panel's default columns: the board's summary with the rank in its group, the
    effect size beside the Holm verdict and MinTRL beside DSR."""
    columns = []
    for column in options.LEADERBOARD_SUMMARY:
        columns.append(column)
        if column in PANEL_EXTRA:
            columns.append(PANEL_EXTRA[column])
    return columns


class LeaderboardController(Controller):
    market = traitlets.Unicode("")
    mode = traitlets.Unicode("")
    sort = traitlets.Unicode("sharpe")
    training_together = traitlets.Bool(False)
    columns = traitlets.List(traitlets.Unicode())
    """The columns chosen (the board's order); empty: the default, those that tell."""
    rows: traitlets.List[Any] = traitlets.List()

    def __init__(self, lab: Any) -> None:
        super().__init__(lab)
        self.table = TableState(page_size=25)
        self.table.restart_on(self, FILTERS)
        self.refresh()

    def refresh(self) -> None:
        """Rank the models again; rows equal to those shown change nothing on screen (empty
        values are None, not NaN, which never equals itself)."""
        with self.action():
            board = self.lab.leaderboard(
                market=self.market or None,
                mode=self.mode or None,
                sort=self.sort,
                training_apart=not self.training_together,
            )
            self.rows = board.astype(object).where(board.notna(), None).to_dict("records")
            self.message = f"{len(board)} models"

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=None if self.rows else panel_columns())

    @traitlets.validate("columns")
    def _known_columns(self, proposal: Any) -> list[str]:
        """Only the board's columns, in its order; an unknown one is refused by name."""
        chosen = list(proposal["value"])
        unknown = [c for c in chosen if c not in options.LEADERBOARD_COLUMNS]
        if unknown:
            raise ValidationError(
                f"unknown leaderboard column {', '.join(map(repr, unknown))}; choose from "
                f"{', '.join(options.LEADERBOARD_COLUMNS)}"
            )
        return [c for c in options.LEADERBOARD_COLUMNS if c in chosen]

    def tables(self) -> list[tuple[str, pd.DataFrame]]:
        """The current page as a table per group of rows ranked together, titled with what
        they share (group, benchmark, training window), in the chosen columns: by default
        those of the panel's that tell something in the table's rows."""
        page = self.table.view(self.frame())
        if page.empty:
            return []
        tables = []
        for title, rows in options.ranked_tables(page, not self.training_together):
            chosen = list(self.columns) or options.telling_columns(rows, panel_columns())
            tables.append((title, rows[[c for c in chosen if c in rows.columns]]))
        return tables


def view(ctl: LeaderboardController) -> w.Widget:
    from ttg_lab.charts import leaderboard_bars

    market = w.Dropdown(
        description="Market",
        options=[("all", ""), *((code, code) for code in options.MARKETS)],
    )
    mode = w.Dropdown(
        description="Mode", options=[("all", ""), *((mode, mode) for mode in options.MODES)]
    )
    sort = w.Dropdown(
        description="Sort by", options=list(options.LEADERBOARD_SORTS), value="sharpe"
    )
    together = w.Checkbox(description="rank runs inside training windows together", indent=False)
    controls = ((market, "market"), (mode, "mode"), (sort, "sort"), (together, "training_together"))
    for widget, trait in controls:
        w.link((ctl, trait), (widget, "value"))
    chooser = w.SelectMultiple(
        description="Columns", options=list(options.LEADERBOARD_COLUMNS), rows=10
    )
    default = w.Button(description="Default columns")
    w.link((ctl, "columns"), (chooser, "value"), transform=(tuple, list))
    default.on_click(lambda _: setattr(ctl, "columns", []))
    refresh = w.Button(description="Refresh", button_style="primary")
    prev_page, next_page = w.Button(description="◀"), w.Button(description="▶")
    table, status, chart = w.HTML(), w.HTML(), w.Output()

    def redraw(*_: Any) -> None:
        tables = ctl.tables()
        table.value = "".join(
            f'<div class="ttg-subtitle">{html.escape(title)}</div>'
            + table_html(rows, BOARD_FORMATS)
            for title, rows in tables
        ) or table_html(pd.DataFrame())
        status.value = status_html(ctl)

    def draw(*_: Any) -> None:  # an empty board clears the chart of an earlier filter
        frame = ctl.frame()
        try:
            show_figure(chart, None if frame.empty else leaderboard_bars(frame))
        except Exception as exc:  # a chart problem must not hide the table
            show_figure(chart, None)
            ctl.error = str(exc)

    ctl.observe(redraw, names=["rows", "columns", "error", "message"])
    ctl.observe(draw, names="rows")
    for widget in (market, mode, sort, together):
        widget.observe(lambda _: ctl.refresh(), names="value")
    refresh.on_click(lambda _: ctl.refresh())

    def turn(forward: bool) -> None:
        if forward:
            ctl.table.next_page(len(ctl.rows))
        else:
            ctl.table.previous_page()
        redraw()

    prev_page.on_click(lambda _: turn(False))
    next_page.on_click(lambda _: turn(True))
    redraw()
    draw()
    return w.VBox(
        [
            w.HTML('<div class="ttg-title">Leaderboard</div>'),
            w.HBox([market, mode, sort, together, refresh]),
            w.Accordion([w.HBox([chooser, default])], titles=("Columns",), selected_index=None),
            status,
            table,
            w.HBox([prev_page, next_page]),
            chart,
        ]
    )
