"""Live monitor: positions, cash, equity and the trade feed of a run, updating as it trades.

A run executing in this kernel pushes its events; any other run (another process, a
batch worker) is read from the store with :meth:`MonitorController.load`, which the
view calls every couple of seconds while the run is going.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import ipywidgets as w
import pandas as pd
import traitlets

from ttg_lab import ValidationError
from ttg_lab.engine.events import RunEvent
from ttg_lab.formatting import money, percent
from widgets.common import (
    Controller,
    cards_html,
    on_pick,
    set_options,
    status_html,
    table_html,
)
from widgets.dispatch import call_soon

FEED_ROWS = 50


class MonitorController(Controller):
    """What a watched run holds and does."""

    run_id = traitlets.Int(0)
    status = traitlets.Unicode("")
    clock = traitlets.Unicode("")
    cash = traitlets.Float(0.0)
    equity = traitlets.Float(0.0)
    initial_cash = traitlets.Float(0.0)
    positions = traitlets.Dict()
    feed: traitlets.List[Any] = traitlets.List()
    choices: traitlets.List[Any] = traitlets.List()
    """The runs the user can watch, as (label, run id)."""

    def __init__(self, lab: Any) -> None:
        super().__init__(lab)
        self._unsubscribe: Any = None
        self.refresh()

    def refresh(self) -> None:
        """Read the runs again, and the watched run's state; a run that is gone is no
        longer shown."""
        with self.action():
            self.choices = [
                (f"{r['id']}: {r['model']} #{r['run_number']} ({r['status']})", int(r["id"]))
                for r in self.lab.runs().table().to_dict("records")
            ]
            if self.run_id and self.run_id not in [run_id for _, run_id in self.choices]:
                self._follow(0)
            elif self.run_id:
                self.load()

    def watch(self, run_id: int) -> None:
        """Follow run ``run_id``: load its state and subscribe to it when it runs here."""
        with self.action():
            self._follow(0)
            if not run_id:
                raise ValidationError("choose a run to watch")
            self._follow(run_id)
            self.load()
            handle = self.lab.run(run_id)
            if handle.running:
                self._unsubscribe = handle.subscribe(self._on_event, replay=False)

    def _follow(self, run_id: int) -> None:
        """Stop following the current run and show ``run_id`` (0: none) from scratch."""
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        self.run_id, self.status, self.clock = run_id, "", ""
        self.cash = self.equity = self.initial_cash = 0.0
        self.positions, self.feed = {}, []

    def load(self) -> None:
        """Read the watched run's latest committed state from the store."""
        with self.action():
            handle = self.lab.run(self.run_id)
            info = handle.info
            self.status = info.status
            self.initial_cash = info.initial_cash
            equity = handle.equity()
            if len(equity):
                last = equity.iloc[-1]
                self.cash, self.equity = float(last["cash"]), float(last["equity"])
                self.positions = dict(last["holdings"])
                self.clock = str(last["ts"])
            else:
                self.cash = self.equity = self.initial_cash
                self.positions, self.clock = {}, ""
            ledger = handle.ledger()
            trades = ledger[ledger["status"] != "none"].tail(FEED_ROWS)
            self.feed = (
                trades[["ts", "action", "symbol", "quantity", "fill_price", "status", "reason"]]
                .iloc[::-1]
                .to_dict("records")
            )

    def _on_event(self, event: RunEvent) -> None:
        def apply() -> None:
            if event.kind == "step":
                self.cash, self.equity = float(event.data["cash"]), float(event.data["equity"])
                self.positions = dict(event.data.get("positions", {}))
                self.clock = str(event.sim_time)
            elif event.kind in ("fill", "refusal") and "action" in event.data:
                row = {
                    k: event.data.get(k)
                    for k in (
                        "ts",
                        "action",
                        "symbol",
                        "quantity",
                        "fill_price",
                        "status",
                        "reason",
                    )
                }
                self.feed = [row, *self.feed][:FEED_ROWS]
            elif event.kind == "ended":
                self.status = str(event.data.get("status", "ended"))

        call_soon(apply)

    def position_rows(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{"symbol": s, "quantity": q} for s, q in sorted(self.positions.items())],
            columns=["symbol", "quantity"],
        )


def view(ctl: MonitorController) -> w.Widget:
    picker = w.Dropdown(description="Run", options=[("", 0), *ctl.choices])
    reload_runs = w.Button(description="↻ runs")
    cards, positions, feed, status = w.HTML(), w.HTML(), w.HTML(), w.HTML()

    def redraw(*_: Any) -> None:
        change = ctl.equity / ctl.initial_cash - 1 if ctl.initial_cash else 0.0
        cards.value = cards_html(
            {
                "status": ctl.status or "-",
                "time": ctl.clock or "-",
                "cash": money(ctl.cash),
                "equity": money(ctl.equity),
                "return": percent(change),
                "positions": str(len(ctl.positions)),
            }
        )
        positions.value = table_html(ctl.position_rows())
        feed.value = table_html(pd.DataFrame(ctl.feed), {"fill_price": money})
        status.value = status_html(ctl)

    ctl.observe(
        redraw, names=["cash", "equity", "positions", "feed", "status", "clock", "error", "message"]
    )
    ctl.observe(
        lambda _: set_options(picker, [("", 0), *ctl.choices], ctl.run_id),
        names=["choices", "run_id"],
    )
    on_pick(picker, lambda run_id: ctl.watch(run_id) if run_id else None)
    reload_runs.on_click(lambda _: ctl.refresh())

    async def poll() -> None:
        while True:
            await asyncio.sleep(2.0)
            if ctl.run_id and ctl.status == "running" and ctl._unsubscribe is None:
                ctl.load()

    with contextlib.suppress(RuntimeError):  # no loop in plain Python: no polling
        asyncio.get_event_loop().create_task(poll())
    redraw()
    return w.VBox(
        [
            w.HTML('<div class="ttg-title">Live monitor</div>'),
            w.HBox([picker, reload_runs]),
            status,
            cards,
            w.HTML("<b>Positions</b>"),
            positions,
            w.HTML("<b>Trade feed</b>"),
            feed,
        ]
    )
