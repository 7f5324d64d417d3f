"""MCP services panel: status of the four services, start and stop.

Starting returns at once with the services "starting"; a background poll then shows
each one's real state as it comes up (or why not), so the panel never blocks.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import ipywidgets as w
import pandas as pd
import traitlets

from ttg_lab import TTGLabError, ValidationError
from ttg_lab.mcp_services.manager import ServiceStatus
from widgets.common import Controller, status_html, table_html
from widgets.dispatch import call_soon

POLL_SECONDS = 0.5
START_TIMEOUT = 120.0
"""How long the panel polls starting services before saying they are still starting."""


class ServicesController(Controller):
    rows: traitlets.List[Any] = traitlets.List()
    starting = traitlets.Bool(False)
    """True while started services are polled until they answer."""

    def __init__(self, lab: Any) -> None:
        super().__init__(lab)
        self._poller: threading.Thread | None = None
        self.refresh()

    def _show(self, statuses: list[ServiceStatus]) -> None:
        self.rows = [
            {
                "service": s.service,
                "url": s.url,
                "pid": s.pid,
                "state": s.state,
                "tools": ", ".join(s.tools),
            }
            for s in statuses
        ]

    def refresh(self) -> None:
        with self.action():
            self._show(self.lab.mcp.status())

    def start(self, services: list[str] | None = None) -> bool:
        """Start the services (all by default) and return at once; their state is then
        polled until none is starting."""
        with self.action():
            if self.starting:
                raise ValidationError("the services are still starting")
            started = self.lab.mcp.start(services)
            self._show(self.lab.mcp.status())
            names = [s.service for s in started]
            waiting = [s.service for s in started if s.state == "starting"]
            if waiting:
                self.message = f"starting {', '.join(waiting)}..."
                self.starting = True
                self._poller = threading.Thread(target=self._poll, args=(names,), daemon=True)
                self._poller.start()
            else:
                self.message = _summary(started)
        return self.ok

    def _poll(self, names: list[str]) -> None:
        """Show the services' states until the started ones answer (or fail, or time out)."""
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while True:
                statuses = self.lab.mcp.status()
                chosen = [s for s in statuses if s.service in names]
                done = time.monotonic() >= deadline or all(s.state != "starting" for s in chosen)
                call_soon(self._update(statuses, _summary(chosen) if done else None))
                if done:
                    return
                time.sleep(POLL_SECONDS)
        except TTGLabError as exc:
            call_soon(self._update(None, None, str(exc)))
        except Exception as exc:  # the panel must never die with the thread
            call_soon(
                self._update(None, None, f"checking the services failed ({type(exc).__name__})")
            )

    def _update(
        self, statuses: list[ServiceStatus] | None, final: str | None, error: str = ""
    ) -> Any:
        def apply() -> None:
            if statuses is not None:
                self._show(statuses)
            if final is not None or error:
                self.starting = False
                self.message, self.error = final or "", error

        return apply

    def wait(self, timeout: float = START_TIMEOUT) -> None:
        """Block until the poll after a start ends (for tests and scripts)."""
        if self._poller is not None:
            self._poller.join(timeout)

    def stop(self, services: list[str] | None = None) -> bool:
        with self.action():
            stopped = self.lab.mcp.stop(services)
            self.message = f"stopped: {', '.join(stopped) or 'none were running'}"
            self._show(self.lab.mcp.status())
        return self.ok


def _summary(statuses: list[ServiceStatus]) -> str:
    """What came of a start: how many answer, which still start, which failed (with logs)."""
    healthy = sum(s.healthy for s in statuses)
    parts = [f"{healthy} of {len(statuses)} services healthy"]
    starting = [s for s in statuses if s.state == "starting"]
    if starting:
        parts.append(
            f"still starting after {START_TIMEOUT:g} s: {', '.join(s.service for s in starting)}"
            f" (logs: {', '.join(str(s.log) for s in starting)})"
        )
    for s in statuses:
        if s.state in ("stopped", "unhealthy"):
            parts.append(f"{s.service} is {s.state} (see {s.log})")
    return "; ".join(parts)


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
        start.disabled = ctl.starting

    ctl.observe(redraw, names=["rows", "message", "error", "starting"])
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
