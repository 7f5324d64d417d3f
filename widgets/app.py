"""The dashboard: every panel in one tabbed app, dark themed, served by Voila.

Every panel reads the store when it is shown: each time its tab is opened, and when a
page opens. Voila runs the dashboard notebook in a pre-heated kernel before anyone asks
for a page, so :func:`dashboard` builds the app then, waits until a page takes the kernel
and only then has the shown panel read the store (else the page would show the store as
it was at pre-heat).
"""

from __future__ import annotations

import html
import json
import logging
import os
from typing import Any

import ipywidgets as w
from IPython.display import HTML, display

import ttg_lab
from ttg_lab import Lab, PermissionDeniedError
from ttg_lab.store.access import is_admin
from widgets import (
    admin,
    analyst,
    data,
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

log = logging.getLogger(__name__)

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
    ("Data", data.DataController, data.view),
    ("Admin", admin.AdminController, admin.view),
)
ADMIN_PANELS = ("Data", "Admin")
"""Panels only admins see (their actions refuse anyone else too)."""


class Dashboard:
    """All panel controllers over one lab, and the widget that shows them."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.panels = [p for p in PANELS if p[0] not in ADMIN_PANELS or is_admin(lab.user)]
        """The tabs this user sees: the admin panels only for admins."""
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

    def refresh(self) -> None:
        """Have the shown panel read the store (the others do when they are opened)."""
        index = self.tabs.selected_index if hasattr(self, "tabs") else 0
        self.controllers[self.panels[index or 0][0]].refresh()

    def widget(self) -> w.Widget:
        """The tabbed app. A panel's view is built the first time its tab is opened, so
        the first render only draws the first panel; every opening of a tab has its panel
        read the store."""
        slots = [w.VBox() for _ in self.panels]
        tabs = w.Tab(children=slots)
        tabs.titles = tuple(title for title, _, _ in self.panels)

        def build(index: int) -> None:
            if not slots[index].children:
                title, _, make = self.panels[index]
                slots[index].children = (make(self.controllers[title]),)

        def opened(change: dict[str, Any]) -> None:
            if change["new"] is not None:
                build(change["new"])
                self.refresh()

        tabs.observe(opened, names="selected_index")
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
    if wait_for_page():
        board.refresh()
    return board


def wait_for_page() -> bool:
    """In a kernel Voila pre-heats, block until a page takes the kernel and say so;
    elsewhere (a kernel started for a page, a notebook, a test) return False at once.

    This is ``voila.utils.wait_for_request`` without its imports (55 MB and seconds per
    kernel): Voila sends a pre-heated kernel its page's request variables (``QUERY_STRING``,
    ...) over ``voila/query/<kernel id>`` when a page takes it; they are in ``os.environ``
    afterwards.
    """
    if os.environ.get("VOILA_PREHEAT") != "True":
        return False
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    env = os.environ
    base = env.get("VOILA_WS_BASE_URL") or env.get("VOILA_SERVER_URL", "/")
    url = (
        f"{env.get('VOILA_WS_PROTOCOL', 'ws')}://{env.get('VOILA_APP_IP', '127.0.0.1')}:"
        f"{env.get('VOILA_APP_PORT', '8866')}{base}voila/query/{env.get('VOILA_KERNEL_ID')}"
    )
    try:
        with connect(url, open_timeout=10) as socket:
            request = json.loads(socket.recv())
    except (OSError, TimeoutError, ValueError, WebSocketException) as exc:
        log.warning("the dashboard could not wait for its page at %s: %s", url, exc)
        return True
    os.environ.update({str(k): str(v) for k, v in request.items()})
    return True
