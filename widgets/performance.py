"""Performance panel: equity curves of chosen runs against the benchmark, drawdown,
allocation and trades on a symbol's price chart."""

from __future__ import annotations

from typing import Any

import ipywidgets as w
import traitlets

from ttg_lab import ValidationError
from ttg_lab.formatting import by_unit, flag
from ttg_lab.metrics.reference import METRICS
from widgets.common import Controller, set_options, show_figure, status_html

HEADLINE = (
    "total_return",
    "annual_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "win_rate",
    "trades",
    "benchmark",
    "benchmark_return",
    "vs_benchmark",
)


class PerformanceController(Controller):
    run_ids = traitlets.List(traitlets.Int())
    symbol = traitlets.Unicode("")
    figures = traitlets.Dict()
    summary: traitlets.List[Any] = traitlets.List()
    choices: traitlets.List[Any] = traitlets.List()
    """The finished runs the user can chart, as (label, run id)."""

    def __init__(self, lab: Any) -> None:
        super().__init__(lab)
        self.refresh()

    def refresh(self) -> None:
        """Read the finished runs again; charts of a chosen run that is gone are redrawn
        without it (or cleared)."""
        with self.action():
            frame = self.lab.runs().table()
            frame = frame[frame["status"].isin(["completed", "stopped"])]
            self.choices = [
                (f"{r['id']}: {r['model']} #{r['run_number']} {r['mode']}", int(r["id"]))
                for r in frame.to_dict("records")
            ]
        known = {run_id for _, run_id in self.choices}
        if any(run_id not in known for run_id in self.run_ids):
            self.run_ids = [run_id for run_id in self.run_ids if run_id in known]
            if self.run_ids:
                self.show()
            else:
                self.figures, self.summary = {}, []

    def show(self) -> bool:
        """Build the charts and the headline metrics of the chosen runs. What an earlier
        choice drew is gone first, even when this one fails."""
        from ttg_lab import charts

        self.figures, self.summary = {}, []
        with self.action():
            if not self.run_ids:
                raise ValidationError("choose one or more runs")
            first = self.run_ids[0]
            figures = {
                "equity": charts.equity_curves(self.lab, list(self.run_ids)),
                "drawdown": charts.drawdown(self.lab, first),
                "allocation": charts.allocation(self.lab, first),
            }
            if self.symbol:
                figures["trades"] = charts.trades_on_price(self.lab, first, self.symbol.upper())
            self.figures = figures
            units = {m.key: m.unit for m in METRICS}
            rows = []
            for run_id in self.run_ids:
                run = self.lab.run(run_id)
                metrics = run.metrics()
                row: dict[str, Any] = {  # what the model saw, beside what it made
                    "run": run_id,
                    "masked": flag(run.masked),
                    "training_window": run.training_flag.label,
                }
                for key in HEADLINE:
                    if key == "vs_benchmark":
                        from ttg_lab.leaderboard import verdict

                        row[key] = verdict(metrics)
                    else:
                        row[key] = by_unit(units[key], metrics.get(key))
                rows.append(row)
            self.summary = rows
        return self.ok


def view(ctl: PerformanceController) -> w.Widget:
    import pandas as pd

    from widgets.common import table_html

    runs = w.SelectMultiple(
        description="Runs", options=ctl.choices, rows=8, layout=w.Layout(width="60%")
    )
    symbol = w.Text(description="Symbol", placeholder="trades on this symbol's chart")
    go = w.Button(description="Show", button_style="primary")
    reload_runs = w.Button(description="↻ runs")
    status, summary = w.HTML(), w.HTML()
    outputs = {name: w.Output() for name in ("equity", "drawdown", "allocation", "trades")}

    def redraw(*_: Any) -> None:
        status.value = status_html(ctl)
        summary.value = table_html(pd.DataFrame(ctl.summary))

    def draw(*_: Any) -> None:  # every output: a chart this choice lacks is cleared
        for name, output in outputs.items():
            show_figure(output, ctl.figures.get(name))

    def on_show(_: Any) -> None:
        ctl.run_ids, ctl.symbol = list(runs.value), symbol.value
        ctl.show()

    ctl.observe(redraw, names=["summary", "error", "message"])
    ctl.observe(draw, names="figures")
    ctl.observe(
        lambda _: set_options(runs, ctl.choices, tuple(ctl.run_ids)), names=["choices", "run_ids"]
    )
    go.on_click(on_show)
    reload_runs.on_click(lambda _: ctl.refresh())
    redraw()
    draw()
    return w.VBox(
        [
            w.HTML('<div class="ttg-title">Performance</div>'),
            w.HBox([runs, w.VBox([symbol, go, reload_runs])]),
            status,
            summary,
            *outputs.values(),
        ]
    )
