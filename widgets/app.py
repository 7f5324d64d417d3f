"""The dashboard: every panel in one tabbed app, dark themed, served by Voila."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
from IPython.display import HTML, display

import ttg_lab
from ttg_lab.access import is_admin
from ttg_lab.errors import PermissionDeniedError
from ttg_lab.lab import Lab
from widgets import (
    admin,
    analyst,
    leaderboard,
    models,
    monitor,
    performance,
    reasoning,
    rules,
    run_control,
    services,
)
from widgets.common import THEME_CSS

PANELS = (
    ("Models", models.ModelsController, models.view),
    ("Run", run_control.RunControlController, run_control.view),
    ("Monitor", monitor.MonitorController, monitor.view),
    ("Performance", performance.PerformanceController, performance.view),
    ("Reasoning", reasoning.ReasoningController, reasoning.view),
    ("Rules", rules.RulesController, rules.view),
    ("Leaderboard", leaderboard.LeaderboardController, leaderboard.view),
    ("MCP", services.ServicesController, services.view),
    ("Analyst", analyst.AnalystController, analyst.view),
    ("Admin", admin.AdminController, admin.view),
)


class Dashboard:
    """All panel controllers over one lab, and the widget that shows them."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.panels = [p for p in PANELS if p[0] != "Admin" or is_admin(lab.user)]
        """The tabs this user sees: the Admin tab only for admins."""
        self.controllers: dict[str, Any] = {title: cls(lab) for title, cls, _ in self.panels}
        runner, monitor_ = self.controllers["Run"], self.controllers["Monitor"]
        # citations in the analyst's answers open the reasoning browser at that step
        analyst_, reasoning_ = self.controllers["Analyst"], self.controllers["Reasoning"]
        analyst_.on_cite = self.follow_citation
        self._reasoning = reasoning_
        # a run started here is followed by the live monitor at once
        runner.observe(
            lambda change: monitor_.watch(change["new"]) if change["new"] else None, names="run_id"
        )

    def follow_citation(self, kind: str, ref: str) -> None:
        if kind in ("trade", "reasoning"):
            if hasattr(self, "tabs"):  # open the tab first, so its view exists and follows
                self.tabs.selected_index = [t for t, _, _ in self.panels].index("Reasoning")
            self._reasoning.show(kind, ref)

    def widget(self) -> w.Widget:
        """The tabbed app. A panel's view is built the first time its tab is opened, so
        the first render only draws the first panel."""
        slots = [w.VBox() for _ in self.panels]
        tabs = w.Tab(children=slots)
        tabs.titles = tuple(title for title, _, _ in self.panels)

        def build(index: int) -> None:
            if not slots[index].children:
                title, _, make = self.panels[index]
                slots[index].children = (make(self.controllers[title]),)

        tabs.observe(
            lambda change: build(change["new"]) if change["new"] is not None else None,
            names="selected_index",
        )
        build(0)
        self.tabs = tabs
        user = self.lab.user
        header = w.HTML(
            f'<div class="ttg-title">TTG Lab</div><div class="ttg-card">user: '
            f"{html.escape(user.display_name)} ({html.escape(user.username or user.email)}, "
            f"{user.role})</div>"
        )
        return w.VBox([header, tabs])


def dashboard(db_url: str | None = None, user: str | None = None) -> Dashboard | None:
    """Open the lab as the dashboard's user (JupyterHub's ``JUPYTERHUB_USER`` when it runs
    there, ``TTG_LAB_USER`` otherwise, else the local admin) and display the dashboard.
    A user not yet approved sees why instead of the app."""
    display(HTML(THEME_CSS))
    try:
        lab = ttg_lab.open(db_url, user=user)
    except PermissionDeniedError as exc:
        message = html.escape(str(exc))
        display(HTML(f'<div class="ttg-title">TTG Lab</div><div class="ttg-error">{message}</div>'))
        return None
    board = Dashboard(lab)
    display(board.widget())
    return board
