"""MCP services panel: status of the four services, start and stop."""

from __future__ import annotations

from typing import Any

import ipywidgets as w
import pandas as pd
import traitlets

from widgets.common import Controller, status_html, table_html


class ServicesController(Controller):
    rows: traitlets.List[Any] = traitlets.List()

    def __init__(self, lab: Any) -> None:
        super().__init__(lab)
        self.refresh()

    def refresh(self) -> None:
        with self.action():
            self.rows = [
                {
                    "service": s.service,
                    "url": s.url,
                    "pid": s.pid,
                    "running": s.running,
                    "healthy": s.healthy,
                    "tools": ", ".join(s.tools),
                }
                for s in self.lab.services.status()
            ]

    def start(self, services: list[str] | None = None) -> bool:
        with self.action():
            statuses = self.lab.services.start(services)
            healthy = sum(s.healthy for s in statuses)
            self.message = f"{healthy} of {len(statuses)} services healthy"
            self.refresh()
        return self.ok

    def stop(self, services: list[str] | None = None) -> bool:
        with self.action():
            stopped = self.lab.services.stop(services)
            self.message = f"stopped: {', '.join(stopped) or 'none were running'}"
            self.refresh()
        return self.ok


def view(ctl: ServicesController) -> w.Widget:
    table, status = w.HTML(), w.HTML()
    start, stop, refresh = (
        w.Button(description="Start all", button_style="success"),
        w.Button(description="Stop all", button_style="danger"),
        w.Button(description="Refresh"),
    )

    def redraw(*_: Any) -> None:
        table.value = table_html(pd.DataFrame(ctl.rows))
        status.value = status_html(ctl)

    ctl.observe(redraw, names=["rows", "message", "error"])
    start.on_click(lambda _: ctl.start())
    stop.on_click(lambda _: ctl.stop())
    refresh.on_click(lambda _: ctl.refresh())
    redraw()
    return w.VBox(
        [
            w.HTML('<div class="ttg-title">MCP services</div>'),
            w.HBox([start, stop, refresh]),
            status,
            table,
        ]
    )
