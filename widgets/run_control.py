"""Run control panel: start a run (daily or intraday, any period, masked or not), stop
it, watch its progress and a live terminal of its events (tool calls, fills, refusals,
errors)."""

from __future__ import annotations

import html
from collections import deque
from typing import Any

import ipywidgets as w
import traitlets

from ttg_lab import Run, ValidationError, options
from ttg_lab.engine.events import RunEvent
from widgets.common import Controller, field_value, set_options, status_html
from widgets.dispatch import call_soon

TERMINAL_LINES = 500


class RunControlController(Controller):
    """Start/stop runs and follow their events."""

    model = traitlets.Unicode("")
    mode = traitlets.Unicode("daily")
    start = traitlets.Unicode("")
    end = traitlets.Unicode("")
    costs = traitlets.Unicode("default")
    path = traitlets.Unicode("chat")
    masked = traitlets.Bool(False)
    """What the model sees is masked (chat path only; the run's option refuses others)."""
    run_id = traitlets.Int(0)
    status = traitlets.Unicode("")
    done = traitlets.Int(0)
    total = traitlets.Int(0)
    equity = traitlets.Float(0.0)
    terminal = traitlets.List(traitlets.Unicode())
    models = traitlets.List(traitlets.Unicode())
    """The models the user can run (signatures), as the store has them."""

    def __init__(self, lab: Any) -> None:
        super().__init__(lab)
        self._lines: deque[str] = deque(maxlen=TERMINAL_LINES)
        self.handle: Run | None = None
        self.refresh()

    def refresh(self) -> None:
        """Read the models again; a chosen model that is gone is no longer chosen."""
        with self.action():
            self.models = [m.signature for m in self.lab.models.list()]
            if self.model not in self.models:
                self.model = ""

    def start_run(self) -> bool:
        """Start a run of the chosen model over the chosen period."""
        with self.action():
            if not self.model:
                raise ValidationError("choose a model to run")
            if self.handle is not None and self.handle.running:
                raise ValidationError(f"run {self.run_id} is still going; stop it first")
            self._lines.clear()
            self.terminal = []
            self.handle = self.lab.start_run(
                self.model,
                mode=self.mode,
                start=field_value(self.start),
                end=field_value(self.end),
                costs=self.costs,
                path=self.path,
                masked=self.masked,
                on_event=self._on_event,
            )
            info = self.handle.info
            self.run_id, self.total, self.done = info.id, info.steps_total, 0
            self.status = "running"
            masked = ", masked" if info.masked else ""
            self.message = f"run {info.id} of {info.model} (#{info.run_number}{masked}) started"
        return self.ok

    def stop_run(self) -> None:
        with self.action():
            if self.handle is None or not self.handle.running:
                raise ValidationError("no run is going")
            self.handle.stop()
            self.message = f"stopping run {self.run_id} after the current step"

    def wait(self, timeout: float = 60.0) -> str:
        """Block until the run ends (for scripts and tests)."""
        return self.handle.wait(timeout) if self.handle else ""

    def _on_event(self, event: RunEvent) -> None:
        when = (
            f"{event.sim_time:%Y-%m-%d %H:%M} " if event.sim_time and event.kind != "step" else ""
        )
        self._lines.append(f"[{event.kind}] {when}{event.message}")

        def apply() -> None:
            self.terminal = list(self._lines)
            if event.kind == "step":
                self.done, self.equity = int(event.data["done"]), float(event.data["equity"])
            elif event.kind == "ended":
                self.status = str(event.data.get("status", "ended"))
            elif event.kind == "error":
                self.error = event.message

        call_soon(apply)


def view(ctl: RunControlController) -> w.Widget:
    model = w.Dropdown(description="Model", options=["", *ctl.models])
    mode = w.ToggleButtons(options=list(options.MODES))
    start = w.Text(description="Start", placeholder="YYYY-MM-DD (default: data start)")
    end = w.Text(description="End", placeholder="YYYY-MM-DD (default: data end)")
    costs = w.Dropdown(description="Costs", options=list(options.COST_PRESETS))
    path = w.Dropdown(description="Path", options=list(options.AGENT_PATHS))
    masked = w.Checkbox(
        description="masked (pseudonyms, scaled prices, shifted dates)", indent=False
    )
    for widget, trait in (
        (model, "model"),
        (mode, "mode"),
        (start, "start"),
        (end, "end"),
        (costs, "costs"),
        (path, "path"),
        (masked, "masked"),
    ):
        w.link((ctl, trait), (widget, "value"))
    go, stop, refresh = (
        w.Button(description="Start", button_style="success"),
        w.Button(description="Stop", button_style="danger"),
        w.Button(description="↻ models"),
    )
    bar = w.IntProgress(min=0, max=1, description="Progress")
    label = w.HTML()
    terminal = w.HTML()
    status = w.HTML()

    def redraw(*_: Any) -> None:
        bar.max = max(ctl.total, 1)
        bar.value = ctl.done
        label.value = html.escape(
            f"run {ctl.run_id or '-'}: {ctl.status or 'idle'}, step {ctl.done}/{ctl.total}, "
            f"equity {ctl.equity:,.2f}"
        )
        newest_first = "\n".join(reversed(ctl.terminal[-200:]))
        terminal.value = f'<div class="ttg-terminal">{html.escape(newest_first)}</div>'
        status.value = status_html(ctl)

    ctl.observe(redraw, names=["done", "total", "status", "terminal", "message", "error", "equity"])
    ctl.observe(lambda change: set_options(model, ["", *change["new"]], ctl.model), names="models")
    go.on_click(lambda _: ctl.start_run())
    stop.on_click(lambda _: ctl.stop_run())
    refresh.on_click(lambda _: ctl.refresh())
    redraw()
    return w.VBox(
        [
            w.HTML('<div class="ttg-title">Run control</div>'),
            w.HBox([model, refresh]),
            mode,
            w.HBox([start, end]),
            w.HBox([costs, path, masked]),
            w.HBox([go, stop]),
            bar,
            label,
            status,
            terminal,
        ]
    )
