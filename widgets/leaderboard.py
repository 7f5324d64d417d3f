"""Leaderboard panel: models ranked by their runs, filterable and sortable, with the
benchmark verdict, intervals of repeated runs, cost-aware columns and each row's training
window (runs inside it ranked apart unless "rank together" is ticked)."""

from __future__ import annotations

from typing import Any

import ipywidgets as w
import pandas as pd
import traitlets

from ttg_lab import options
from ttg_lab.formatting import BOARD_FORMATS
from widgets.common import Controller, TableState, show_figure, status_html, table_html


class LeaderboardController(Controller):
    market = traitlets.Unicode("")
    mode = traitlets.Unicode("")
    sort = traitlets.Unicode("sharpe")
    training_together = traitlets.Bool(False)
    rows: traitlets.List[Any] = traitlets.List()

    def __init__(self, lab: Any) -> None:
        super().__init__(lab)
        self.table = TableState(page_size=25)
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
        return pd.DataFrame(
            self.rows, columns=None if self.rows else list(options.LEADERBOARD_SUMMARY)
        )


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
    refresh = w.Button(description="Refresh", button_style="primary")
    prev_page, next_page = w.Button(description="◀"), w.Button(description="▶")
    table, status, chart = w.HTML(), w.HTML(), w.Output()

    def redraw(*_: Any) -> None:
        frame = ctl.frame()
        shown = (
            frame[[c for c in options.LEADERBOARD_SUMMARY if c in frame.columns]]
            if not frame.empty
            else frame
        )
        table.value = table_html(ctl.table.view(shown), BOARD_FORMATS)
        status.value = status_html(ctl)

    def draw(*_: Any) -> None:  # an empty board clears the chart of an earlier filter
        frame = ctl.frame()
        try:
            show_figure(chart, None if frame.empty else leaderboard_bars(frame))
        except Exception as exc:  # a chart problem must not hide the table
            show_figure(chart, None)
            ctl.error = str(exc)

    ctl.observe(redraw, names=["rows", "error", "message"])
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
            status,
            table,
            w.HBox([prev_page, next_page]),
            chart,
        ]
    )
