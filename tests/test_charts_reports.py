"""Charts and HTML reports of real runs on a private store, and the report in Chromium."""

from __future__ import annotations

import dataclasses
import html
import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from plotly.offline import get_plotlyjs

import ttg_lab.run
from ttg_lab import Run, charts
from ttg_lab.cli import main
from ttg_lab.config import PROJECT_ROOT
from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.lab import Lab
from ttg_lab.reports import comparison_report, format_metric
from ttg_lab.store.schema import ReasoningEntry

TICKERS = ["AAPL", "MSFT", "NVDA", "AMD", "INTC", "AMZN"]
SCRIPT = "<script>alert(1)</script>"
EVIL_NAME = "<img src=x onerror=alert(2)>"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?(?:https?:)?//""", re.I
)
"""A script, stylesheet, image or font fetched from the network."""


@dataclass
class Runs:
    mom: Run
    capped: Run


@pytest.fixture()
def runs(lab: Lab, tmp_path: Path) -> Runs:
    """A momentum run (buys and sells) and a buy-and-hold run under an order-value cap."""
    lab.config = dataclasses.replace(lab.config, reports_dir=tmp_path / "reports")
    mom = lab.models.create("mom", ai_model_id="baseline/momentum", tickers=TICKERS)
    capped = lab.models.create("capped", ai_model_id="baseline/buy_and_hold", tickers=TICKERS)
    lab.rules.add(capped, "cap", {"max_order_value": 800})
    return Runs(
        lab.start_run(mom, path="direct", background=False),
        lab.start_run(capped, path="direct", background=False),
    )


def largest_fill(handle: Run) -> pd.Series:
    ledger = handle.ledger()
    fills = ledger[ledger["status"] == "filled"]
    value = (fills["quantity"] * fills["fill_price"]).abs().to_numpy()
    return fills.iloc[int(np.argmax(value))]


def add_script_reasoning(lab: Lab, handle: Run) -> None:
    """A decision entry carrying script, linked to the run's largest fill (so it is shown)."""
    fill = largest_fill(handle)
    with lab.store.session() as session:
        session.add(
            ReasoningEntry(
                run_id=handle.id,
                step_index=int(fill["step_index"]),
                ts=pd.Timestamp(fill["ts"]).to_pydatetime(),
                type="decision",
                content=f"{SCRIPT} buy & hold <b>more</b>",
                context={},
                order_ids=[str(fill["order_id"])],
            )
        )


def assert_self_contained(text: str) -> None:
    """One inline plotly.js bundle, and nothing outside it that the page would fetch
    (the bundle's own strings mention plotly.com links, which load nothing)."""
    assert text.startswith("<!DOCTYPE html>")
    bundle = get_plotlyjs()
    assert text.count(bundle) == 1
    page = text.replace(bundle, "")
    assert not EXTERNAL.search(page), EXTERNAL.search(page)
    assert "<link" not in page and not re.search(r"<script[^>]*\bsrc\s*=", page)
    assert "cdn.plot.ly" not in page and "@import" not in page


# ---------------------------------------------------------------- charts -------------
def test_equity_curves_per_run_and_benchmark(lab: Lab, runs: Runs) -> None:
    fig = charts.equity_curves(lab, [runs.mom.id, runs.capped.id])
    assert [t.name for t in fig.data] == ["mom #1", "capped #1", "QQQ buy-and-hold"]
    bars = len(runs.mom.equity())
    assert all(len(t.x) == bars == len(t.y) for t in fig.data)
    for trace, handle in zip(fig.data, (runs.mom, runs.capped), strict=False):
        assert trace.y[-1] == pytest.approx(1 + lab.run(handle.id).metrics()["total_return"])
    bench = fig.data[2]
    assert bench.y[-1] == pytest.approx(1 + lab.run(runs.mom.id).metrics()["benchmark_return"])
    colours = charts.model_colours(["capped", "mom"])
    assert fig.data[0].line.color == colours["mom"] != fig.data[1].line.color
    assert fig.layout.template.layout.paper_bgcolor == "rgb(17,17,17)"  # plotly_dark

    money = charts.equity_curves(lab, [runs.mom.id], benchmark=False, normalise=False)
    assert [t.name for t in money.data] == ["mom #1"]
    np.testing.assert_allclose(money.data[0].y, runs.mom.equity()["equity"])
    assert "USD" in money.layout.yaxis.title.text


def test_each_run_is_drawn_against_its_own_markets_benchmark_over_its_own_bars(
    lab: Lab, runs: Runs
) -> None:
    """A US, a crypto and an A-share run, and a US run over another period: four
    benchmark lines (QQQ twice, CD5, 000016.SH), each over its run's bars, each ending at
    that run's benchmark_return; two runs over the same bars share one line."""
    others = {}
    periods = {
        "crypto": ("2025-11-01", "2025-11-15"),  # the CD5 index starts on 1 November
        "cn": ("2025-09-01", "2025-10-31"),
        "us": ("2025-06-10", "2025-07-31"),
    }
    for market, (start, end) in periods.items():
        model = lab.models.create(
            f"bh {market}", ai_model_id="baseline/buy_and_hold", market=market
        )
        others[market] = lab.start_run(model, path="direct", background=False, start=start, end=end)
    ids = [runs.mom.id, runs.capped.id, others["crypto"].id, others["cn"].id, others["us"].id]
    fig = charts.equity_curves(lab, ids)
    lines = [t for t in fig.data if t.meta and "benchmark" in t.meta]
    assert sorted(t.meta["benchmark"] for t in lines) == ["000016.SH", "CD5", "QQQ", "QQQ"]
    served = {tuple(t.meta["run_ids"]): t for t in lines}
    assert sorted(served) == sorted(
        [
            (runs.mom.id, runs.capped.id),
            (others["crypto"].id,),
            (others["cn"].id,),
            (others["us"].id,),
        ]
    )
    expected = {runs.mom.id: "QQQ", others["crypto"].id: "CD5", others["cn"].id: "000016.SH"}
    expected[others["us"].id] = "QQQ"
    for run_ids, line in served.items():
        run_id = run_ids[0]
        metrics = lab.run(run_id).metrics()
        assert line.meta["benchmark"] == expected[run_id] == metrics["benchmark"]
        assert list(pd.to_datetime(line.x)) == list(pd.to_datetime(lab.run(run_id).equity()["ts"]))
        assert line.y[-1] == pytest.approx(1 + metrics["benchmark_return"])
        assert all(lab.run(r).info.model in line.name for r in run_ids)  # says whose it is
    with pytest.raises(ValidationError, match=r"different currencies \(CNY, USD\)"):
        charts.equity_curves(lab, [runs.mom.id, others["cn"].id], normalise=False)


def test_equity_curves_say_when_the_benchmark_is_missing(
    lab: Lab, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ttg_lab.run, "benchmark_closes", lambda *args: None)
    fig = charts.equity_curves(lab, [runs.mom.id])
    assert [t.name for t in fig.data] == ["mom #1"]
    assert "benchmark QQQ is not in the us 1d data" in fig.layout.annotations[0].text


def test_drawdown_marks_the_deepest_peak_and_trough(lab: Lab, runs: Runs) -> None:
    fig = charts.drawdown(lab, runs.mom.id)
    metrics = lab.run(runs.mom.id).metrics()
    curve, marks = fig.data
    assert len(curve.x) == len(runs.mom.equity())
    assert min(curve.y) == pytest.approx(metrics["max_drawdown"])
    assert max(curve.y) <= 0
    assert list(marks.x) == [metrics["max_drawdown_peak"], metrics["max_drawdown_trough"]]
    assert marks.y[1] == pytest.approx(metrics["max_drawdown"])
    assert fig.layout.yaxis.tickformat == ".1%"


def test_allocation_stacks_up_to_equity(lab: Lab, runs: Runs) -> None:
    equity = runs.mom.equity()["equity"].to_numpy()
    fig = charts.allocation(lab, runs.mom.id, top=2)
    names = [t.name for t in fig.data]
    assert names[0] == "cash" and names[-1] == "other (4)" and len(names) == 4
    assert set(names[1:3]) <= set(TICKERS)
    assert all(len(t.y) == len(equity) and t.stackgroup == "allocation" for t in fig.data)
    np.testing.assert_allclose(sum(np.asarray(t.y) for t in fig.data), equity, rtol=1e-9)
    everything = charts.allocation(lab, runs.mom.id)
    assert "other" not in " ".join(t.name for t in everything.data)
    with pytest.raises(ValidationError, match="top must be"):
        charts.allocation(lab, runs.mom.id, top=0)


def test_trades_on_price_marks_fills_at_their_prices(lab: Lab, runs: Runs) -> None:
    symbol = charts.most_traded_symbol(lab, runs.mom.id)
    assert symbol in TICKERS
    fig = charts.trades_on_price(lab, runs.mom.id, symbol)
    candles = fig.data[0]
    assert candles.type == "candlestick" and candles.name == symbol
    assert len(candles.x) == len(runs.mom.equity())  # the symbol has every bar of the run
    ledger = runs.mom.ledger()
    fills = ledger[(ledger["status"] == "filled") & (ledger["symbol"] == symbol)]
    markers = {t.name: t for t in fig.data[1:]}
    assert set(markers) == set(fills["action"]) == {"buy", "sell"}
    for action, trace in markers.items():
        rows = fills[fills["action"] == action]
        np.testing.assert_allclose(trace.y, rows["fill_price"])
        first = rows.iloc[0]
        assert f"order {first['order_id']}" in trace.text[0]
        assert f"{action} {first['quantity']:g} {symbol}" in trace.text[0]


def test_charts_refuse_bad_input(lab: Lab, runs: Runs) -> None:
    builds: list[Callable[[], object]] = [
        lambda: charts.equity_curves(lab, [runs.mom.id, 999]),
        lambda: charts.drawdown(lab, 999),
        lambda: charts.allocation(lab, 999),
        lambda: charts.trades_on_price(lab, 999, "AAPL"),
    ]
    for build in builds:
        with pytest.raises(NotFoundError, match="no run 999"):
            build()
    with pytest.raises(ValidationError, match="at least one run"):
        charts.equity_curves(lab, [])
    with pytest.raises(NotFoundError, match="'ZZZZ' is not in the us 1d price data"):
        charts.trades_on_price(lab, runs.mom.id, "ZZZZ")
    with pytest.raises(ValidationError, match=r"never traded META; it traded AAPL, AMD"):
        charts.trades_on_price(lab, runs.mom.id, "META")
    with pytest.raises(ValidationError, match="leaderboard is empty"):
        charts.leaderboard_bars(pd.DataFrame(columns=["model", "total_return"]))
    with pytest.raises(ValidationError, match="no column 'nope'"):
        charts.leaderboard_bars(lab.leaderboard(), "nope")
    with pytest.raises(ValidationError, match="has no rules"):
        charts.rule_attribution(pd.DataFrame())


def test_leaderboard_bars_with_benchmark_and_intervals(lab: Lab, runs: Runs) -> None:
    board = lab.leaderboard()
    fig = charts.leaderboard_bars(board)
    bars, bench = fig.data
    assert bars.type == "bar" and list(bars.x) == board["model"].tolist()
    np.testing.assert_allclose(bars.y, board["total_return"])
    np.testing.assert_allclose(bench.y, board["benchmark_return"])
    assert bench.name == "benchmark buy-and-hold"
    assert all(v in hover for v, hover in zip(board["vs_benchmark"], bars.customdata, strict=True))
    assert fig.layout.yaxis.tickformat == ".1%"
    sharpe = charts.leaderboard_bars(board, "sharpe")
    assert len(sharpe.data) == 1 and sharpe.layout.yaxis.tickformat == ".2f"

    repeated = board.copy()
    repeated["mean_return"] = pd.Series([0.2, None], dtype=object)
    repeated["mean_ci_low"] = pd.Series([0.1, None], dtype=object)
    repeated["mean_ci_high"] = pd.Series([0.25, None], dtype=object)
    fig = charts.leaderboard_bars(repeated)
    mean = next(t for t in fig.data if t.name == "mean of runs (95% CI)")
    assert mean.error_y.array[0] == pytest.approx(0.05)
    assert mean.error_y.arrayminus[0] == pytest.approx(0.1)
    on_bars = charts.leaderboard_bars(repeated, "mean_return")
    assert on_bars.data[0].error_y.array[0] == pytest.approx(0.05)


def test_rule_attribution_bars(lab: Lab, runs: Runs) -> None:
    table = lab.run(runs.capped.id).attribution()
    fig = charts.rule_attribution(table)
    (bars,) = fig.data
    assert list(bars.x) == table["rule"].tolist() == ["cap", "platform default"]
    np.testing.assert_allclose(bars.y, table["pnl_effect"])
    cap = table.set_index("rule").loc["cap"]
    assert f"resized {cap['resized']}" in bars.customdata[0] and cap["resized"] > 0


# ---------------------------------------------------------------- reports ------------
def test_run_report_is_complete_and_self_contained(lab: Lab, runs: Runs) -> None:
    add_script_reasoning(lab, runs.capped)
    path = runs.capped.report(runs.capped.report_path)
    assert path == (lab.config.reports_dir / f"run-{runs.capped.id}-capped.html").resolve()
    text = path.read_text(encoding="utf-8")
    assert_self_contained(text)
    metrics = lab.run(runs.capped.id).metrics()
    for key in ("total_return", "final_value", "sharpe", "max_drawdown", "benchmark_return"):
        assert f">{format_metric(key, metrics[key], 'USD')}<" in text
    for heading in ("Metrics", "Rule attribution", "Reasoning behind the largest fills"):
        assert f"<h2>{heading}</h2>" in text
    for chart in ("equity", "drawdown", "allocation", "attribution", "trades"):
        assert f'id="chart-{chart}"' in text
    assert text.count("Plotly.newPlot(") == 5
    assert "baseline/buy_and_hold" in text and "max_order_value=800.0" in text
    assert SCRIPT not in text and "alert(1)" not in text.replace("&lt;script&gt;alert(1)", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; buy &amp; hold &lt;b&gt;more&lt;/b&gt;" in text
    assert "<td>resize</td>" in text  # decisions by verdict


def test_run_report_without_rules_or_trades(lab: Lab) -> None:
    model = lab.models.create(EVIL_NAME, ai_model_id="baseline/cash", tickers=["AAPL"])
    handle = lab.start_run(
        model, path="direct", start="2025-06-10", end="2025-06-20", background=False
    )
    path = handle.report(lab.config.reports_dir / "sub" / "cash.html")
    text = path.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert EVIL_NAME not in text and html.escape(EVIL_NAME) in text
    assert 'id="chart-attribution"' not in text and "The run filled no orders." in text


def test_comparison_report(lab: Lab, runs: Runs) -> None:
    ids = [runs.mom.id, runs.capped.id]
    path = comparison_report(lab, ids)
    assert path.name == f"comparison-{ids[0]}-{ids[1]}.html"
    text = path.read_text(encoding="utf-8")
    assert_self_contained(text)
    for handle in (runs.mom, runs.capped):
        metrics = lab.run(handle.id).metrics()
        assert f">{format_metric('total_return', metrics['total_return'])}<" in text
        assert f">{format_metric('final_value', metrics['final_value'], 'USD')}<" in text
    assert "mom #1" in text and "capped #1" in text
    assert text.count("Plotly.newPlot(") == 3  # equity, return bars, Sharpe bars
    with pytest.raises(ValidationError, match="at least two"):
        comparison_report(lab, [runs.mom.id, runs.mom.id])
    with pytest.raises(NotFoundError, match="no run 999"):
        comparison_report(lab, [runs.mom.id, 999])


def test_report_command(lab: Lab, runs: Runs, db_url: str, tmp_path: Path) -> None:
    cli = CliRunner()
    out = tmp_path / "one.html"
    result = cli.invoke(main, ["--db", db_url, "report", str(runs.mom.id), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out.resolve()) and out.exists()
    both = tmp_path / "both.html"
    args = ["--db", db_url, "report", str(runs.mom.id), str(runs.capped.id), "--out", str(both)]
    result = cli.invoke(main, args)
    assert result.exit_code == 0 and "Comparison of 2 runs" in both.read_text(encoding="utf-8")
    result = cli.invoke(main, ["--db", db_url, "report", "999"])
    assert result.exit_code == 1 and "no run 999" in result.output


# ---------------------------------------------------------------- in a browser -------
def browser_or_skip() -> None:
    """Skip without Chromium or playwright, except in CI where both must be present."""
    missing = [
        what
        for what, ok in (
            (str(CHROMIUM), CHROMIUM.exists()),
            ("the playwright package", importlib.util.find_spec("playwright") is not None),
        )
        if not ok
    ]
    if missing:
        reason = f"needs {' and '.join(missing)} to open the report in headless Chromium"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def test_run_report_renders_in_chromium(lab: Lab, runs: Runs) -> None:
    browser_or_skip()
    from playwright.sync_api import Dialog, sync_playwright

    model = lab.models.create(EVIL_NAME, ai_model_id="baseline/momentum", tickers=TICKERS)
    lab.rules.add(model, "cap", {"max_order_value": 800})
    handle = lab.start_run(model, path="direct", background=False)
    add_script_reasoning(lab, handle)
    path = handle.report(handle.report_path)
    shot = PROJECT_ROOT / "reports" / "screenshots" / "report-run.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    dialogs: list[str] = []
    requests: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("dialog", on_dialog)
            page.on("request", lambda request: requests.append(request.url))
            page.goto(path.as_uri())
            page.wait_for_function(
                """() => {
                    const plots = [...document.querySelectorAll('.js-plotly-plot')];
                    return plots.length === 5 && plots.every(p => p.querySelector('svg.main-svg'));
                }""",
                timeout=60_000,
            )
            sizes: list[Any] = page.evaluate(
                """() => [...document.querySelectorAll('.js-plotly-plot')].map(p => [
                    p.id, p.getBoundingClientRect().height,
                    p.querySelector('svg.main-svg').getBoundingClientRect().height])"""
            )
            title = page.title()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == [] and dialogs == []
    assert [r for r in requests if not r.startswith("file:")] == []
    assert [s[0] for s in sizes] == [
        "chart-equity",
        "chart-drawdown",
        "chart-allocation",
        "chart-attribution",
        "chart-trades",
    ]
    assert all(div == pytest.approx(svg) for _, div, svg in sizes)  # each plot in its box
    assert EVIL_NAME not in title
    assert shot.stat().st_size > 10_000
