"""The dashboard's leaderboard and run panels for Step 5: the board's statistics columns
with a column chooser, groups, paging that starts over when a filter changes; the Run
panel's masked checkbox."""

from __future__ import annotations

from typing import Any

import pytest

from ttg_lab.lab import Lab
from widgets import leaderboard
from widgets.leaderboard import LeaderboardController


def html_of(widget: Any) -> str:
    """The HTML a view shows, from all its HTML widgets."""
    own = str(widget.value) if hasattr(widget, "value") and isinstance(widget.value, str) else ""
    return own + "".join(html_of(child) for child in getattr(widget, "children", ()))


def find(widget: Any, kind: type, description: str) -> Any:
    """The first control of ``kind`` in a view with this description."""
    if isinstance(widget, kind) and getattr(widget, "description", None) == description:
        return widget
    for child in getattr(widget, "children", ()):
        found = find(child, kind, description)
        if found is not None:
            return found
    return None


@pytest.fixture()
def shipped(lab: Lab) -> Lab:
    """AI-Trader's 26 imported rows and a baseline: more than one page of 25."""
    lab.data.load_shipped()
    model = lab.models.create("mom", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    lab.start_run(model, path="direct", background=False)
    return lab


def test_a_filter_change_starts_the_board_over_at_its_first_page(shipped: Lab) -> None:
    import ipywidgets as w

    panel = LeaderboardController(shipped)
    view = leaderboard.view(panel)
    assert len(panel.rows) > panel.table.page_size
    find(view, w.Button, "▶").click()
    assert panel.table.page == 1 and "nothing to show" not in html_of(view)
    find(view, w.Dropdown, "Market").value = "crypto"  # fewer rows than a page
    assert panel.rows and all(r["market"] == "crypto" for r in panel.rows)
    assert panel.table.page == 0 and "nothing to show" not in html_of(view)
    # a filter set by code (a notebook driving the panel) starts over as well
    panel.market = ""
    panel.refresh()
    panel.table.next_page(len(panel.rows))
    panel.mode = "daily"
    panel.refresh()
    assert panel.table.page == 0


def test_the_board_shows_its_statistics_by_group_and_any_column_chosen(shipped: Lab) -> None:
    import ipywidgets as w

    from ttg_lab import ValidationError, options

    panel = LeaderboardController(shipped)
    view = leaderboard.view(panel)
    shown = html_of(view)
    for column in (
        "rank",
        "n_runs",
        "n_steps",
        "p_holm",
        "holm_verdict",
        "cohens_d",
        "psr",
        "dsr",
        "min_trl",
        "llm_cost",
        "repriced_return",  # imported runs re-priced: a cost flag
    ):
        assert f"<th>{column}</th>" in shown, column
    assert "<th>vs_benchmark</th>" not in shown  # a choice away
    assert "<th>masked</th>" not in shown  # no masked run: a flag no row has
    apart = {"unknown": 1, "inside": 2}  # training windows ranked apart
    groups = [(apart.get(r["training_window"], 0), r["group"]) for r in panel.rows]
    assert groups == sorted(groups, key=groups.index)  # rows ranked together sit together
    # a table per group of rows ranked together, what they share in its title
    assert '<div class="ttg-subtitle">us daily 2025-06-10..2025-10-30 - benchmark QQQ</div>' in (
        shown
    )
    assert "- benchmark QQQ - after the knowledge cutoff</div>" in shown  # the window
    assert "<th>group</th>" not in shown and "<th>benchmark</th>" not in shown
    titles = [title for title, _ in panel.tables()]
    assert len(titles) == len(set(titles)) > 1

    chooser = find(view, w.SelectMultiple, "Columns")
    chooser.value = ("vs_benchmark", "model", "sharpe")
    assert panel.columns == ["model", "sharpe", "vs_benchmark"]  # in the board's order
    assert "<th>vs_benchmark</th>" in html_of(view) and "<th>psr</th>" not in html_of(view)
    find(view, w.Button, "Default columns").click()
    assert panel.columns == [] and "<th>psr</th>" in html_of(view)
    with pytest.raises(ValidationError, match="unknown leaderboard column 'vibes'"):
        panel.columns = ["model", "vibes"]
    assert panel.columns == [] and set(chooser.options) == set(options.LEADERBOARD_COLUMNS)


def test_the_reasoning_browser_starts_over_at_its_first_page_when_a_filter_changes(
    lab: Lab,
) -> None:
    """The sibling of the board's paging: filters set by code, then a search."""
    from widgets.reasoning import ReasoningController

    model = lab.models.create("talky", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    lab.start_run(model, path="direct", background=False)
    browser = ReasoningController(lab)
    browser.choose("talky")
    assert browser.total > 2 * browser.table.page_size, browser.error
    browser.next_page()
    assert browser.table.page == 1 and browser.results
    first = browser.results[0]
    browser.text = str(first["content"]).split()[0]  # a word of an entry on page 2
    browser.search()
    assert browser.table.page == 0 and browser.results, browser.message


def test_the_run_panels_masked_box_starts_a_masked_run_and_the_direct_path_refuses_it(
    lab: Lab,
) -> None:
    import ipywidgets as w

    from ttg_lab.errors import ValidationError
    from ttg_lab.runs.options import RunOptions
    from widgets import run_control
    from widgets.run_control import RunControlController

    lab.models.create("hidden", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    panel = RunControlController(lab)
    view = run_control.view(panel)
    box = find(view, w.Checkbox, "masked (pseudonyms, scaled prices, shifted dates)")
    panel.model, panel.start, panel.end = "hidden", "2025-06-10", "2025-06-20"
    box.value = True
    assert panel.masked

    panel.path = "direct"  # the option's own refusal, and nothing started
    assert not panel.start_run()
    with pytest.raises(ValidationError) as refused:
        RunOptions(path="direct", masked=True)
    assert panel.error == str(refused.value) and lab.runs().table().empty

    panel.path = "chat"  # a baseline on the chat path: its model sees masked answers
    assert panel.start_run(), panel.error
    assert panel.wait(120) == "completed"
    run = lab.run(panel.run_id)
    assert run.masked and "masked" in panel.message
    box.value = False
    assert panel.start_run(), panel.error
    assert panel.wait(120) == "completed" and not lab.run(panel.run_id).masked


def test_the_run_report_and_the_dashboards_run_summary_say_whether_a_run_was_masked(
    lab: Lab,
) -> None:
    from widgets.performance import PerformanceController

    model = lab.models.create("veiled", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    period = {"start": "2025-06-10", "end": "2025-06-20", "background": False}
    masked = lab.start_run(model, path="chat", masked=True, **period)
    plain = lab.start_run(model, path="chat", **period)
    shown = masked.report()
    assert "· masked ·" in shown and "training window: not an LLM" in shown
    assert "<th>masked</th><td><span class='verdict'>yes: the model saw pseudonyms" in shown
    other = plain.report()
    assert "· masked ·" not in other and "no: the model saw real tickers" in other

    perf = PerformanceController(lab)
    perf.run_ids = [masked.id, plain.id]
    assert perf.show(), perf.error
    assert [(r["masked"], r["training_window"]) for r in perf.summary] == [
        ("yes", "not an LLM"),
        ("no", "not an LLM"),
    ]
