"""The Run object: what start_run, lab.run and lab.runs give, one class for reading and control."""

from __future__ import annotations

import dataclasses

import pandas as pd
import plotly.graph_objects as go
import pytest

import ttg_lab
import ttg_lab.engine.events
from ttg_lab.engine.reader import RunInfo
from ttg_lab.engine.snapshot import RunSnapshot
from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.lab import Lab

PERIOD = {"start": "2025-06-10", "end": "2025-07-10", "path": "direct"}
TABLE_COLUMNS = [
    "id",
    "model",
    "run_number",
    "status",
    "mode",
    "start",
    "end",
    "steps",
    "trades",
    "final_value",
    "final_return",
    "max_drawdown",
    "experiment",
    "error",
]


def test_every_way_to_a_run_gives_the_same_run_object(lab: Lab) -> None:
    model = lab.models.create("mom", ai_model_id="baseline/momentum", tickers=["AAPL", "MSFT"])
    started = lab.start_run(model, background=False, **PERIOD)
    listed = lab.runs()
    assert isinstance(started, ttg_lab.Run) and isinstance(listed, ttg_lab.RunList)
    assert [r.id for r in listed] == [started.id] and isinstance(listed[0], ttg_lab.Run)
    assert isinstance(lab.run(started.id), ttg_lab.Run)
    assert listed.table().columns.tolist() == TABLE_COLUMNS
    assert "<table" in listed._repr_html_() and f"Run {started.id}" in started._repr_html_()
    assert repr(started) == f"<Run {started.id}: {model.signature} #1 completed>"


def test_info_is_typed_and_read_fresh_from_the_store(lab: Lab) -> None:
    model = lab.models.create("mom", ai_model_id="baseline/momentum", tickers=["AAPL", "MSFT"])
    run = lab.start_run(model, background=True, **PERIOD)
    assert run.wait(120) == "completed"
    info = run.info
    assert isinstance(info, RunInfo) and isinstance(info.snapshot, RunSnapshot)
    assert (info.status, info.steps_done, info.model_name) == ("completed", info.steps_total, "mom")
    assert info.path == "direct" and info.market == "us" and info.interval == "1d"
    assert info.costs == info.snapshot.costs and info.ended_at is not None
    assert info.final_value == run.equity()["equity"].iloc[-1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.status = "failed"  # type: ignore[misc]
    assert lab.run(run.id).info == info  # the same stored run reads the same


def test_runs_filters_by_status_and_names_a_bad_one(lab: Lab) -> None:
    model = lab.models.create("mom", ai_model_id="baseline/momentum", tickers=["AAPL"])
    run = lab.start_run(model, background=False, **PERIOD)
    assert [r.id for r in lab.runs(status="completed")] == [run.id]
    assert lab.runs(model, status="failed") == [] and lab.runs(status="failed").table().empty
    with pytest.raises(ValidationError, match=r"run status must be one of .* got 'done'"):
        lab.runs(status="done")


def test_metrics_report_and_plots_come_from_the_run(lab: Lab, tmp_path: object) -> None:
    model = lab.models.create("bh", ai_model_id="baseline/buy_and_hold", tickers=["AAPL", "MSFT"])
    run = lab.start_run(model, background=False, **PERIOD)
    assert run.metrics()["final_value"] == pytest.approx(run.info.final_value)
    html = run.report()
    assert isinstance(html, str) and html.startswith("<!DOCTYPE html>") and "bh #1" in html
    path = run.report(run.report_path)
    assert path == (lab.config.reports_dir / f"run-{run.id}-{model.signature}.html").resolve()
    assert path.read_text(encoding="utf-8") == html
    for figure in (
        run.plot.equity(),
        run.plot.drawdown(),
        run.plot.allocation(top=1),
        run.plot.trades(),
    ):
        assert isinstance(figure, go.Figure) and figure.data
    with pytest.raises(ValidationError, match="top must be"):
        run.plot.allocation(top=0)


def test_a_run_without_fills_asks_for_a_symbol_to_plot(lab: Lab) -> None:
    cash = lab.models.create("cash", ai_model_id="baseline/cash", tickers=["AAPL"])
    run = lab.start_run(cash, background=False, **PERIOD)
    with pytest.raises(ValidationError, match=f"run {run.id} filled no orders: name a symbol"):
        run.plot.trades()
    with pytest.raises(ValidationError, match="never traded AAPL"):
        run.plot.trades("AAPL")


def test_resume_follows_the_new_execution_and_replay_is_a_new_run(lab: Lab) -> None:
    model = lab.models.create("mom", ai_model_id="baseline/momentum", tickers=["AAPL", "MSFT"])
    run = lab.start_run(model, background=False, **PERIOD)
    reference = run.ledger()

    def stop_at_third_step(event: ttg_lab.engine.events.RunEvent) -> None:
        if event.kind == "step" and event.data["done"] == 3:
            lab.run(event.run_id).stop()

    stopped = lab.start_run(model, background=False, on_event=stop_at_third_step, **PERIOD)
    assert stopped.status == "stopped" and stopped.info.steps_done == 3
    assert stopped.resume(background=False) is stopped  # the same Run follows the resumption
    assert stopped.status == "completed" and not stopped.running
    pd.testing.assert_frame_equal(
        stopped.ledger().drop(columns="order_id"), reference.drop(columns="order_id")
    )
    with pytest.raises(NotFoundError):
        lab.run(run.id + 99)
