"""Reasoning browser: pick a model and run, filter by dates and type, search the text,
and step through the run day by day with the trades each entry led to."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
import pandas as pd
import traitlets

from ttg_lab import ValidationError
from ttg_lab.engine.stored_reasoning import (
    REASONING_TYPES,
    run_steps_with_reasoning,
    search_reasoning,
    trades_of,
)
from ttg_lab.formatting import money, when
from widgets.common import (
    Controller,
    TableState,
    field_value,
    on_pick,
    set_options,
    status_html,
    table_html,
)

PAGE = 25


class ReasoningController(Controller):
    """Filters, results and the step cursor of the reasoning browser."""

    model = traitlets.Unicode("")
    run_id = traitlets.Int(0)
    types = traitlets.List(traitlets.Unicode(), default_value=list(REASONING_TYPES))
    start = traitlets.Unicode("")
    end = traitlets.Unicode("")
    text = traitlets.Unicode("")
    results: traitlets.List[Any] = traitlets.List()
    total = traitlets.Int(0)
    step_position = traitlets.Int(-1)
    step_entries: traitlets.List[Any] = traitlets.List()
    step_trades: traitlets.List[Any] = traitlets.List()
    focus = traitlets.Unicode("search")  # which view to show: search | day
    model_choices = traitlets.List(traitlets.Unicode())
    """The models the user can read (signatures)."""
    run_choices: traitlets.List[Any] = traitlets.List()
    """The chosen model's runs, as (label, run id)."""

    def __init__(self, lab: Any) -> None:
        super().__init__(lab)
        self.table = TableState(page_size=PAGE)
        self.table.restart_on(self, ["types", "start", "end", "text"])
        self._steps: list[tuple[int, Any]] = []
        self.refresh()

    def refresh(self) -> None:
        """Read the models, the chosen model's runs and the chosen run's entries again (a
        running run has new steps); a model or run that is gone is no longer shown."""
        with self.action():
            self.model_choices = [m.signature for m in self.lab.models.list()]
            if self.model not in self.model_choices:
                self._clear()
                self.model, self.run_choices = "", []
                return
            if not self.model:
                return
            self.run_choices = self.runs()
            if self.run_id not in [run_id for _, run_id in self.run_choices]:
                self._clear()
                return
            self._steps = run_steps_with_reasoning(self.lab.store, self.run_id)
        if self.ok and self.run_id:
            self.search()

    def runs(self) -> list[tuple[str, int]]:
        if not self.model:
            return []
        frame = self.lab.runs(self.model).table()
        return [
            (
                f"#{r['run_number']} {r['mode']} {when(r['start'])}..{when(r['end'])} "
                f"({r['status']})",
                int(r["id"]),
            )
            for r in frame.to_dict("records")
        ]

    def _clear(self) -> None:
        """Show no run: nothing of an earlier choice stays on screen."""
        self.run_id, self.total, self.results = 0, 0, []
        self.step_position, self.step_entries, self.step_trades = -1, [], []
        self._steps = []
        self.table.page = 0

    def choose(self, model: str, run_id: int | None = None) -> None:
        """Pick a model and (by default) its latest run, then search."""
        with self.action():
            self._clear()
            self.model = model
            self.run_choices = runs = self.runs()
            if not runs:
                raise ValidationError(f"model {model} has no runs yet")
            chosen = run_id or runs[0][1]
            if chosen not in [rid for _, rid in runs]:  # runs() lists only the user's own
                raise ValidationError(f"no run {chosen} of model {model}")
            self.run_id = chosen
            self._steps = run_steps_with_reasoning(self.lab.store, self.run_id)
            self.step_position = -1
            self.table.page = 0
        if self.ok:
            self.search()

    def search(self) -> None:
        """Apply the filters and show the first page of matching entries."""
        with self.action():
            if not self.run_id:
                raise ValidationError("choose a model and a run")
            frame, total = search_reasoning(
                self.lab.store,
                run_id=self.run_id,
                types=list(self.types) or None,
                start=field_value(self.start),
                end=field_value(self.end),
                text=self.text or None,
                limit=PAGE,
                offset=self.table.page * PAGE,
            )
            self.total = total
            self.results = frame.to_dict("records")
            self.message = f"{total:,} entries"

    def next_page(self) -> None:
        self.table.next_page(self.total)
        self.search()

    def previous_page(self) -> None:
        self.table.previous_page()
        self.search()

    def step(self, delta: int) -> None:
        """Move the day-by-day cursor and load that step's entries and trades."""
        with self.action():
            if not self._steps:
                raise ValidationError("this run has no reasoning to step through")
            self.step_position = min(max(self.step_position + delta, 0), len(self._steps) - 1)
            index, _ = self._steps[self.step_position]
            frame, _ = search_reasoning(
                self.lab.store,
                run_id=self.run_id,
                step=index,
                types=list(self.types) or None,
                limit=200,
            )
            self.step_entries = frame.to_dict("records")
            self.step_trades = trades_of(self.lab.store, self.run_id, step=index).to_dict("records")

    def show(self, kind: str, ref: str) -> None:
        """Open the step a cited trade or reasoning entry belongs to (day-by-day view)."""
        from sqlalchemy import select

        from ttg_lab.store.schema import LedgerEntry, ReasoningEntry, TradingModel, TradingRun

        with self.action():
            table = LedgerEntry if kind == "trade" else ReasoningEntry
            with self.lab.store.session() as session:
                row = session.execute(
                    select(table.run_id, table.step_index, TradingModel.signature)
                    .join(TradingRun, TradingRun.id == table.run_id)
                    .join(TradingModel, TradingModel.id == TradingRun.model_id)
                    .where(table.id == int(ref))
                ).first()
            if row is None:
                raise ValidationError(f"no {kind} {ref}")
            run_id, step, model = row
            self.lab.run(run_id)  # citations cannot open another user's run
            if run_id != self.run_id:
                self.choose(model, run_id)
            positions = [i for i, (s, _) in enumerate(self._steps) if s == step]
            self.step_position = positions[0] if positions else -1
            self.step(0)
            self.message = f"{kind} {ref}: {self.step_label}"
            self.focus = "day"

    @property
    def step_label(self) -> str:
        if self.step_position < 0 or not self._steps:
            return "step: -"
        _, ts = self._steps[self.step_position]
        return f"step {self.step_position + 1} of {len(self._steps)}: {when(ts)}"


def entries_html(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return '<div class="ttg-empty">no entries</div>'
    parts = []
    for row in rows:
        parts.append(
            f'<div class="ttg-card" style="display:block"><div class="label">#{row["id"]} · '
            f"{html.escape(when(row['ts']))} · {html.escape(row['type'])} · orders: "
            f"{html.escape(', '.join(row['order_ids'] or []) or '-')}</div>"
            f'<div style="white-space:pre-wrap">{html.escape(row["content"])}</div></div>'
        )
    return "".join(parts)


def view(ctl: ReasoningController) -> w.Widget:
    model = w.Dropdown(description="Model", options=["", *ctl.model_choices])
    run = w.Dropdown(description="Run", options=ctl.run_choices)
    types = w.SelectMultiple(
        description="Types", options=list(REASONING_TYPES), value=list(REASONING_TYPES), rows=4
    )
    start, end = (
        w.Text(description="From", placeholder="YYYY-MM-DD"),
        w.Text(description="To", placeholder="YYYY-MM-DD"),
    )
    text = w.Text(description="Search", placeholder="words in the reasoning")
    go = w.Button(description="Filter", button_style="primary")
    prev_page, next_page = w.Button(description="◀ page"), w.Button(description="page ▶")
    prev_step, next_step = w.Button(description="◀ day"), w.Button(description="day ▶")
    results, status, step_label, step_view, trades = (
        w.HTML(),
        w.HTML(),
        w.HTML(),
        w.HTML(),
        w.HTML(),
    )

    def on_run(run_id: int | None) -> None:
        if run_id and run_id != ctl.run_id:
            ctl.choose(ctl.model, run_id)

    def apply_filters(_: Any) -> None:
        ctl.types, ctl.start, ctl.end, ctl.text = (
            list(types.value),
            start.value,
            end.value,
            text.value,
        )
        ctl.table.page = 0
        ctl.search()

    def redraw(*_: Any) -> None:
        results.value = entries_html(ctl.results)
        status.value = status_html(ctl)
        step_label.value = html.escape(ctl.step_label)
        step_view.value = entries_html(ctl.step_entries)
        trades.value = table_html(
            pd.DataFrame(ctl.step_trades).drop(columns=["id"], errors="ignore"),
            {"fill_price": money, "fees": money, "ts": when},
        )

    ctl.observe(
        redraw,
        names=["results", "message", "error", "step_entries", "step_trades", "step_position"],
    )
    ctl.observe(
        lambda _: set_options(model, ["", *ctl.model_choices], ctl.model),
        names=["model_choices", "model"],
    )
    ctl.observe(
        lambda _: set_options(run, ctl.run_choices, ctl.run_id), names=["run_choices", "run_id"]
    )
    on_pick(model, lambda signature: ctl.choose(signature) if signature else None)
    on_pick(run, on_run)
    go.on_click(apply_filters)
    prev_page.on_click(lambda _: ctl.previous_page())
    next_page.on_click(lambda _: ctl.next_page())
    prev_step.on_click(lambda _: ctl.step(-1))
    next_step.on_click(lambda _: ctl.step(+1))
    redraw()
    search_tab = w.VBox(
        [
            w.HBox([types, w.VBox([start, end, text, go])]),
            status,
            w.HBox([prev_page, next_page]),
            results,
        ]
    )
    step_tab = w.VBox(
        [
            w.HBox([prev_step, next_step, step_label]),
            step_view,
            w.HTML("<b>Trades this step</b>"),
            trades,
        ]
    )
    tabs = w.Tab(children=[search_tab, step_tab])
    ctl.observe(
        lambda change: setattr(tabs, "selected_index", 1 if change["new"] == "day" else 0),
        names="focus",
    )
    tabs.selected_index = 1 if ctl.focus == "day" else 0
    tabs.set_title(0, "Search")
    tabs.set_title(1, "Day by day")
    return w.VBox([w.HTML('<div class="ttg-title">Reasoning</div>'), w.HBox([model, run]), tabs])
