"""Panel controllers without a browser: every button is a method; bad input in every
form gives a clear message and saves nothing."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import pytest

import ttg_lab
from ttg_lab import charts
from ttg_lab.lab import Lab
from widgets import leaderboard, performance, rules
from widgets.admin import AdminController
from widgets.analyst import AnalystController
from widgets.app import PANELS, Dashboard, dashboard
from widgets.leaderboard import LeaderboardController
from widgets.models import ModelsController
from widgets.monitor import MonitorController
from widgets.performance import PerformanceController
from widgets.reasoning import ReasoningController
from widgets.rules import RulesController
from widgets.run_control import RunControlController
from widgets.services import ServicesController


def fill(ctl: ModelsController, **values: object) -> None:
    ctl.new()
    defaults = {
        "name": "panel model",
        "ai_model_id": "baseline/momentum",
        "market": "us",
        "initial_cash": 10_000.0,
        "tickers": "",
        "parameters": "{}",
    }
    for key, value in {**defaults, **values}.items():
        setattr(ctl, key, value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"name": ""}, "name must not be empty"),
        ({"initial_cash": -5.0}, "initial cash must be above 0"),
        ({"tickers": "AAPL, NOPE"}, "unknown ticker"),
        ({"parameters": "{top_k: 5"}, "parameters must be JSON"),
        ({"parameters": '{"top_kk": 5}'}, "unknown parameter"),
        ({"ai_model_id": "baseline/nope"}, "unknown baseline"),
    ],
)
def test_models_form_refuses_bad_input(lab: Lab, values: dict[str, object], message: str) -> None:
    ctl = ModelsController(lab)
    fill(ctl, **values)
    assert ctl.save() is False
    assert message in ctl.error and "Traceback" not in ctl.error
    assert lab.models.list() == []


def test_models_create_edit_and_delete_with_confirmation(lab: Lab) -> None:
    ctl = ModelsController(lab)
    fill(ctl, name="Panel Momentum", tickers="aapl msft", parameters='{"top_k": 1}')
    assert ctl.save(), ctl.error
    assert ctl.selected == "panel-momentum" and [r["signature"] for r in ctl.rows] == [
        "panel-momentum"
    ]
    ctl.select("panel-momentum")
    assert ctl.tickers == "AAPL, MSFT"
    ctl.initial_cash = 20_000.0
    assert ctl.save() and lab.models.get("panel-momentum").initial_cash == 20_000
    ctl.request_delete("panel-momentum")
    ctl.cancel_delete()
    assert lab.models.list() != []
    ctl.request_delete("panel-momentum")
    assert ctl.confirm_delete() and lab.models.list() == []
    ctl.request_delete("")
    assert "choose a model" in ctl.error


def test_run_control_starts_streams_and_stops(lab: Lab) -> None:
    lab.models.create("runner", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    ctl = RunControlController(lab)
    ctl.model, ctl.start, ctl.end = "runner", "2025-09-01", "2025-08-01"
    assert not ctl.start_run() and "is before start" in ctl.error and lab.runs().table().empty
    ctl.model, ctl.start, ctl.end = "", "", ""
    assert not ctl.start_run() and "choose a model" in ctl.error
    ctl.model = "runner"
    assert ctl.start_run(), ctl.error
    assert ctl.wait(60) == "completed"
    deadline = time.time() + 5
    while ctl.status != "completed" and time.time() < deadline:
        time.sleep(0.05)
    assert ctl.done == ctl.total == 100 and ctl.status == "completed"
    assert any("[fill]" in line for line in ctl.terminal) and any(
        "[tool]" in line for line in ctl.terminal
    )
    ctl.stop_run()
    assert "no run is going" in ctl.error


def test_monitor_follows_a_run(lab: Lab) -> None:
    model = lab.models.create(
        "watched", ai_model_id="baseline/buy_and_hold", tickers=["AAPL", "MSFT"]
    )
    run = lab.start_run(model, path="direct", background=False)
    ctl = MonitorController(lab)
    ctl.watch(0)
    assert "choose a run" in ctl.error
    ctl.watch(run.id)
    assert ctl.ok and ctl.status == "completed"
    assert set(ctl.positions) == {"AAPL", "MSFT"} and ctl.equity == run.info.final_value
    assert [r["symbol"] for r in ctl.feed] == ["MSFT", "AAPL"]  # newest first
    assert list(ctl.position_rows()["symbol"]) == ["AAPL", "MSFT"]


def test_reasoning_browser_filters_searches_and_steps(lab: Lab) -> None:
    model = lab.models.create("thinker", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    run = lab.start_run(model, background=False)
    ctl = ReasoningController(lab)
    ctl.search()
    assert "choose a model" in ctl.error
    ctl.choose("thinker")
    assert ctl.run_id == run.id and ctl.total > 100
    ctl.types = ["decision"]
    ctl.search()
    assert ctl.results and {r["type"] for r in ctl.results} == {"decision"}
    ctl.types, ctl.text = ["analysis"], "selected"
    ctl.search()
    assert ctl.results and all("selected" in r["content"].lower() for r in ctl.results)
    ctl.start, ctl.end = "2025-09-01", "2025-08-01"
    ctl.search()
    assert "is before start" in ctl.error
    ctl.start = ctl.end = ""
    ctl.text = ""
    ctl.types = ["plan", "analysis", "decision", "reflection"]
    ctl.step(+1)
    first = ctl.step_label
    for _ in range(40):
        ctl.step(+1)
        if ctl.step_trades:
            break
    assert ctl.step_label != first and ctl.step_trades  # the first rebalance
    assert all(t["step_index"] == ctl.step_entries[0]["step_index"] for t in ctl.step_trades)


def test_rules_editor_validates_on_save_and_shows_attribution(lab: Lab) -> None:
    model = lab.models.create(
        "ruled", ai_model_id="baseline/buy_and_hold", tickers=["AAPL", "NVDA"]
    )
    ctl = RulesController(lab)
    assert not ctl.save() and "choose a model" in ctl.error
    ctl.choose("ruled")
    ctl.name, ctl.parameters = "cap", '{"max_position_pct": 500}'
    assert (
        not ctl.save()
        and "max_position_pct must be in" in ctl.error
        and lab.rules.list(model) == []
    )
    ctl.parameters = "{oops"
    assert not ctl.save() and "must be JSON" in ctl.error
    ctl.parameters = '{"blocked_symbols": ["NVDA"]}'
    assert ctl.save() and [r["name"] for r in ctl.rules] == ["cap"]
    ctl.toggle("cap")
    assert not lab.rules.get(model, "cap").active
    ctl.toggle("cap")
    run = lab.start_run(model, path="direct", background=False)
    ctl.load_attribution(run.id)
    assert ctl.attribution[0]["rule"] == "cap" and ctl.attribution[0]["blocked"] == 1


def html_of(widget: Any) -> str:
    """The HTML a view shows, from all its HTML widgets."""
    own = str(widget.value) if hasattr(widget, "value") and isinstance(widget.value, str) else ""
    return own + "".join(html_of(child) for child in getattr(widget, "children", ()))


def test_leaderboard_performance_services_admin_and_analyst(lab: Lab) -> None:
    model = lab.models.create("board", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    run = lab.start_run(model, path="direct", background=False)
    board = LeaderboardController(lab)
    assert [r["model"] for r in board.rows] == ["board"]
    shown = html_of(leaderboard.view(board))  # the board names the benchmark of its returns
    assert "- benchmark QQQ</div>" in shown  # in the title of the rows that share it
    board.market = "crypto"
    board.refresh()
    assert board.rows == []

    perf = PerformanceController(lab)
    assert not perf.show() and "choose one or more runs" in perf.error
    perf.run_ids, perf.symbol = [run.id], "NOPE"
    assert not perf.show() and "NOPE" in perf.error
    perf.symbol = ""
    assert perf.show(), perf.error
    assert (
        set(perf.figures) == {"equity", "drawdown", "allocation"}
        and perf.summary[0]["run"] == run.id
        and perf.summary[0]["benchmark"] == "QQQ"  # which benchmark the return is of
    )

    services = ServicesController(lab)
    assert [r["service"] for r in services.rows] == ["math", "search", "trade", "price"]
    assert {r["state"] for r in services.rows} == {"stopped"}

    admin = AdminController(lab)
    admin.email, admin.display_name = "not-an-email", "X"
    assert not admin.add() and "not an email" in admin.error
    admin.email, admin.display_name = "bea@lab.test", "Bea"
    assert admin.add() and any(u["email"] == "bea@lab.test" for u in admin.users)
    assert admin.change_role("bea@lab.test", "admin")
    assert not admin.change_role("bea@lab.test", "owner") and "role must be one of" in admin.error
    admin.setting_key, admin.setting_value = "rules.ceilings", '{"max_position_pct": 999}'
    assert not admin.save_setting() and "max_position_pct" in admin.error
    lab.user.role = "user"
    assert not AdminController(lab).allowed
    denied = AdminController(lab)
    assert "listing users needs an admin" in denied.error

    analyst = AnalystController(lab)
    assert not analyst.ask() and "choose a run" in analyst.error


def test_analyst_panel_streams_cites_and_accepts_with_confirmation(lab: Lab) -> None:
    lab.data.load_shipped()
    run_id = int(lab.runs("aitrader-gpt-5-crypto-daily").table().iloc[0]["id"])
    board = Dashboard(lab)
    board.widget()
    ctl = board.controllers["Analyst"]
    ctl.open(run_id)
    ctl.question = ""
    assert not ctl.ask(wait=True) and "type a question" in ctl.error
    ctl.question = "How did it do and why?"
    assert ctl.ask(wait=True)
    deadline = time.time() + 10
    while ctl.busy and time.time() < deadline:
        time.sleep(0.05)
    assert [m["role"] for m in ctl.history] == ["user", "assistant"]
    trade = next(c for c in ctl.citations if c["kind"] == "trade")
    ctl.cite("trade", trade["ref"])  # opens the reasoning browser at that trade's step
    reasoning = board.controllers["Reasoning"]
    assert reasoning.run_id == run_id and any(
        str(t["id"]) == trade["ref"] for t in reasoning.step_trades
    )
    assert board.tabs.selected_index == 4
    ctl.question = "Which rules would have helped?"
    ctl.ask(wait=True)
    while ctl.busy and time.time() < deadline + 20:
        time.sleep(0.05)
    suggestion = ctl.suggestions[0]
    ctl.request_accept(suggestion["id"])
    model = lab.run(run_id).info.model
    assert lab.rules.list(model) == []  # nothing until confirmed
    assert ctl.confirm_accept() and lab.rules.list(model)[0].parameters == suggestion["parameters"]


def test_the_dashboard_builds_every_panel(lab: Lab) -> None:
    widget = Dashboard(lab).widget()
    tabs = widget.children[1]
    assert list(tabs.titles) == [title for title, _, _ in PANELS]


def test_every_panel_reads_the_store_when_its_tab_is_opened(lab: Lab, db_url: str) -> None:
    """A model and run created by another process since the dashboard was built appear in
    every panel as soon as its tab is opened, without a Refresh."""
    board = Dashboard(lab)
    board.widget()
    other = ttg_lab.open(db_url)
    model = other.models.create("late comer", ai_model_id="baseline/momentum")
    run = other.start_run(model, path="direct", background=False, end="2025-06-30")
    other.close()
    ctl = board.controllers
    assert "late-comer" not in [r["signature"] for r in ctl["Models"].rows]  # as built
    for index in [*range(1, len(board.panels)), 0]:
        board.tabs.selected_index = index
    assert "late-comer" in [r["signature"] for r in ctl["Models"].rows]
    assert "late-comer" in [r["model"] for r in ctl["Leaderboard"].rows]
    assert "late-comer" in ctl["Run"].models
    assert "late-comer" in ctl["Reasoning"].model_choices
    assert "late-comer" in ctl["Rules"].model_choices
    for title in ("Monitor", "Performance", "Analyst"):
        assert run.id in [run_id for _, run_id in ctl[title].choices], title
    assert all(c.ok for c in ctl.values()), {t: c.error for t, c in ctl.items() if not c.ok}


def test_a_panel_shows_nothing_of_a_model_deleted_elsewhere(lab: Lab, db_url: str) -> None:
    """Opening a tab after another process deleted the model a panel shows empties what it
    showed of that model and its run; the user's other choices stay."""
    kept = lab.models.create("kept", ai_model_id="baseline/buy_and_hold", tickers=["AAPL"])
    kept_run = lab.start_run(kept, path="direct", background=False, end="2025-06-20")
    model = lab.models.create("doomed", ai_model_id="baseline/buy_and_hold", tickers=["AAPL"])
    lab.rules.add(model, "cap", {"max_position_pct": 20})
    run = lab.start_run(model, path="direct", background=False, end="2025-06-20")
    board = Dashboard(lab)
    board.widget()
    ctl = board.controllers
    ctl["Models"].select("doomed")
    ctl["Run"].model = "kept"
    ctl["Monitor"].watch(run.id)
    ctl["Performance"].run_ids = [kept_run.id, run.id]
    assert ctl["Performance"].show()
    ctl["Reasoning"].choose("doomed")
    ctl["Rules"].choose("doomed")
    ctl["Rules"].load_attribution(run.id)
    ctl["Analyst"].open(run.id)
    assert ctl["Reasoning"].results and ctl["Rules"].attribution and ctl["Analyst"].analyst
    other = ttg_lab.open(db_url)
    other.models.delete("doomed")
    other.close()
    for index in [*range(1, len(board.panels)), 0]:
        board.tabs.selected_index = index
    assert ctl["Models"].selected == "" and ctl["Models"].name == ""
    assert ctl["Run"].model == "kept"
    assert ctl["Monitor"].run_id == 0 and ctl["Monitor"].feed == []
    perf = ctl["Performance"]
    assert perf.run_ids == [kept_run.id] and [r["run"] for r in perf.summary] == [kept_run.id]
    reasoning = ctl["Reasoning"]
    assert (reasoning.model, reasoning.run_id, reasoning.results) == ("", 0, [])
    assert (ctl["Rules"].model, ctl["Rules"].rules, ctl["Rules"].attribution) == ("", [], [])
    assert ctl["Analyst"].run_id == 0 and ctl["Analyst"].history == []
    assert all(c.ok for c in ctl.values()), {t: c.error for t, c in ctl.items() if not c.ok}


def test_the_dashboard_reads_the_store_when_a_page_takes_a_preheated_kernel(
    lab: Lab, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Voila runs the notebook ahead of any page and, when a page takes the kernel, sends
    it the page's request over ``voila/query/<kernel id>``: what was created between the
    pre-heat and the page opening is on the page, and the page's query string is known."""
    from websockets.sync.server import ServerConnection, serve

    asked: list[str] = []

    def voila_query(socket: ServerConnection) -> None:
        asked.append(str(socket.request.path if socket.request else ""))
        other = ttg_lab.open(db_url)  # meanwhile, another process creates a model
        other.models.create("after preheat", ai_model_id="baseline/momentum")
        other.close()
        socket.send(json.dumps({"QUERY_STRING": "run=7"}))  # then a page opens

    with serve(voila_query, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        for name, value in {
            "VOILA_PREHEAT": "True",
            "VOILA_APP_PORT": str(server.socket.getsockname()[1]),
            "VOILA_SERVER_URL": "/",
            "VOILA_KERNEL_ID": "k-1",
            "QUERY_STRING": "",
        }.items():
            monkeypatch.setenv(name, value)
        board = dashboard(db_url)
        server.shutdown()
    assert asked == ["/voila/query/k-1"] and os.environ["QUERY_STRING"] == "run=7"
    assert board is not None
    assert "after-preheat" in [r["signature"] for r in board.controllers["Models"].rows]


def titles(drawn: dict[int, Any]) -> list[str]:
    return [str(f.layout.title.text) for f in drawn.values() if f is not None]


def test_no_panel_keeps_a_chart_of_an_earlier_choice(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: dict[int, Any] = {}  # what each chart output of a view shows now
    draws: list[Any] = []

    def record(output: Any, figure: Any) -> None:
        drawn[id(output)] = figure
        draws.append(figure)

    for module in (performance, leaderboard, rules):
        monkeypatch.setattr(module, "show_figure", record)
    model = lab.models.create("charted", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    lab.rules.add(model, "cap", {"max_position_pct": 20})
    run = lab.start_run(model, path="direct", background=False)
    symbol = charts.most_traded_symbol(lab, run.id)
    perf = PerformanceController(lab)
    performance.view(perf)
    perf.run_ids, perf.symbol = [run.id], str(symbol)
    assert perf.show() and any("trades of" in t for t in titles(drawn))
    perf.symbol = ""
    assert perf.show() and titles(drawn) and not any("trades of" in t for t in titles(drawn))
    perf.symbol = "NOPE"
    assert not perf.show() and titles(drawn) == [] and perf.summary == []

    drawn.clear()
    lab.start_run(model, path="direct", background=False)  # two runs: a mean of returns
    single = lab.models.create("single", ai_model_id="baseline/cash")  # one run: no mean
    lab.start_run(single, path="direct", background=False, end="2025-06-30")
    board = LeaderboardController(lab)
    leaderboard.view(board)
    assert any(t.startswith("Leaderboard") for t in titles(drawn))
    before = len(draws)
    board.refresh()  # opening the tab again: the same board is not drawn again
    assert len(draws) == before
    board.market = "crypto"
    board.refresh()
    assert board.rows == [] and titles(drawn) == []

    drawn.clear()
    editor = RulesController(lab)
    rules.view(editor)
    editor.choose("charted")
    editor.load_attribution(run.id)
    assert any(t.startswith("Rule attribution") for t in titles(drawn))
    lab.models.create("plain", ai_model_id="baseline/cash")
    editor.refresh()
    editor.choose("plain")
    assert editor.attribution == [] and titles(drawn) == []


@pytest.mark.slow
def test_starting_services_in_the_panel_never_blocks_and_shows_their_real_state(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start returns at once with the service "starting" (a Python process needs seconds
    to boot, more on a busy machine); the panel's poll then shows it healthy."""
    import socket

    from ttg_lab.mcp_services import manager

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        monkeypatch.setitem(manager.DEFAULT_PORTS, "math", probe.getsockname()[1])
    lab = ttg_lab.open(sqlite_url)
    ctl = ServicesController(lab)
    try:
        began = time.monotonic()
        assert ctl.start(["math"]), ctl.error
        assert time.monotonic() - began < 5.0
        assert ctl.starting and ctl.message == "starting math..."
        assert next(r for r in ctl.rows if r["service"] == "math")["state"] == "starting"
        ctl.wait()
        assert not ctl.starting and ctl.message == "1 of 1 services healthy", ctl.message
        assert next(r for r in ctl.rows if r["service"] == "math")["state"] == "healthy"
    finally:
        assert ctl.stop(), ctl.error
        lab.close()
    assert {r["state"] for r in ctl.rows} == {"stopped"}
