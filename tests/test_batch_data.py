"""A batch file's ``data`` section: checked with the file, fetched from a provider (the test
bar server on 127.0.0.1) before the first execution, recorded in the batch's folder; a
failed fetch starts no run, and a rerun of the batch asks no answer twice."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from support.bar_server import BarServer

from ttg_lab.batch.executors import Job, LocalExecutor, Result
from ttg_lab.batch.experiment import ExperimentError, load_experiment, parse_experiment
from ttg_lab.batch.runner import FETCH_LOG, BatchDataError, BatchRunner
from ttg_lab.errors import PermissionDeniedError
from ttg_lab.lab import Lab
from ttg_lab.market.loader import read_price_frame
from ttg_lab.market.shipped import read_shipped

SHIFT = pd.Timedelta(weeks=21)
"""The shipped bars moved past the store's (weekdays kept): bars the store lacks."""
TICKERS = ["AAPL", "MSFT", "NVDA"]
PERIOD = {"start": "2025-12-01", "end": "2025-12-31"}
"""Days the store has no bar of until the batch fetches them (one month: one request each)."""


@pytest.fixture()
def server() -> Iterator[BarServer]:
    import support.bar_server  # noqa: F401 (registers the test provider)

    frame = read_shipped("us_daily")
    frame = frame[frame["symbol"].isin(TICKERS)].copy()
    frame["ts"] = frame["ts"] + SHIFT
    with BarServer({"1d": frame.reset_index(drop=True)}) as running:
        yield running


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The lab's data folder (where fetched answers are cached): the test's own."""
    folder = tmp_path / "data"
    monkeypatch.setenv("TTG_LAB_DATA_DIR", str(folder))
    return folder


def data_entry(server: BarServer, **change: Any) -> dict[str, Any]:
    entry = {
        "provider": "testbars",
        "market": "us",
        "interval": "1d",
        "symbols": TICKERS,
        **PERIOD,
        "base_url": server.base_url,
    }
    return {k: v for k, v in {**entry, **change}.items() if v is not None}


def experiment(server: BarServer, name: str, **data: Any) -> dict[str, Any]:
    """One run of model ``fetched`` (the tickers, buy and hold) over the fetched month."""
    return {
        "name": name,
        "base": {"model": "fetched", "path": "direct", "costs": "zero", **PERIOD},
        "grid": {"seed": [0]},
        "data": data_entry(server, **data),
    }


class RecordingExecutor:
    """Runs each job as a real run in this process (no notebook), noting how many requests
    the bar server had answered when the executions began."""

    def __init__(self, lab: Lab, server: BarServer, status: str | None = None) -> None:
        self.lab, self.server, self.status = lab, server, status
        self.jobs: list[Job] = []
        self.requests_before: int | None = None

    def run(
        self, fn: Callable[[Job], Result], jobs: list[Job], concurrency: int
    ) -> Iterator[Result]:
        self.requests_before = self.server.total
        for job in jobs:
            self.jobs.append(job)
            p = job["parameters"]
            run = self.lab.start_run(
                p["model"], start=p["start"], end=p["end"], costs="zero", background=False
            )
            done = run.status == "completed"
            yield {
                "key": job["key"],
                "output": job["output"],
                "parameters": p,
                "status": self.status or ("done" if done else "failed"),
                "result": {"run_id": run.id},
                "error": run.info.error,
            }


def model(lab: Lab) -> None:
    lab.models.create("fetched", ai_model_id="baseline/buy_and_hold", tickers=TICKERS)


def stored(lab: Lab) -> pd.DataFrame:
    return read_price_frame(lab.store, "us", "1d", TICKERS, start=PERIOD["start"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, r"data: unknown key\(s\) colour"),
        ({"start": "2025-13-01"}, "data: start: start '2025-13-01' is not a date"),
        ({"end": "someday"}, "data: end: end 'someday' is not a date"),
        ({"end": "2025-11-01"}, "data: end 2025-11-01 is before start 2025-12-01"),
        ({"provider": "nope"}, "data: provider: unknown data provider 'nope'"),
        ({"symbols": None, "universe": "sp500"}, "data: universe: unknown universe 'sp500'"),
        ({"symbols": None, "universe": "sse50"}, "data: universe: universe 'sse50' is of the cn"),
        ({"universe": "nasdaq100"}, "data: give either symbols or universe"),
        ({"market": "mars"}, "data: market: unknown market 'mars'"),
        ({"market": None}, "data: missing market"),
        (
            {"provider": "alphavantage", "base_url": "ftp://example"},
            "data: base_url: Alpha Vantage URL 'ftp://example' is not an http",
        ),
        ({"interval": "5min"}, "data: interval '5min'"),
        ({"symbols": ["AAPL", "no way"]}, "data: 'no way': not us symbols"),
        ({"symbols": "AAPL"}, "data: symbols must be a non-empty list"),
    ],
)
def test_a_bad_data_section_is_refused_naming_the_key_before_anything_is_asked(
    server: BarServer, change: dict[str, Any], message: str
) -> None:
    doc = experiment(server, "bad", **change)
    with pytest.raises(ExperimentError, match=message):
        parse_experiment(doc)
    assert server.total == 0


def test_a_key_typed_into_the_data_section_is_refused_not_quoted(server: BarServer) -> None:
    key = "sk-proj-" + secrets.token_hex(24)
    doc = experiment(server, "leaky", base_url=f"{server.base_url}/{key}")
    with pytest.raises(ExperimentError, match="data's base_url holds an API key") as refused:
        parse_experiment(doc)
    assert key not in str(refused.value) and server.total == 0


def test_a_bad_entry_of_a_data_list_is_named_by_its_place(server: BarServer) -> None:
    doc = {**experiment(server, "bad"), "data": [data_entry(server), {"provider": "testbars"}]}
    with pytest.raises(ExperimentError, match="data entry 2: missing market, start, end"):
        parse_experiment(doc)
    with pytest.raises(ExperimentError, match=r"data must be a mapping .* or a non-empty list"):
        parse_experiment({**doc, "data": []})


def test_a_batch_fetches_its_data_before_its_runs_which_trade_the_fetched_bars(
    lab: Lab, db_url: str, server: BarServer, data_dir: Path, tmp_path: Path
) -> None:
    model(lab)
    assert stored(lab).empty  # the store has no bar of the period yet
    path = tmp_path / "fetched.yaml"
    path.write_text(yaml.safe_dump(experiment(server, "fetched")))
    spec = load_experiment(path)
    executor = RecordingExecutor(lab, server)
    summary = BatchRunner(spec, db_url, tmp_path / "reports", executor).run()
    assert executor.requests_before == 3  # every symbol's month answered before any run
    (report,) = summary.fetches
    assert report.ok and report.sent == 3
    assert len(summary.done) == 1, summary.frame()
    run = lab.run(summary.done[0]["result"]["run_id"])
    assert run.status == "completed"
    days = pd.DatetimeIndex(stored(lab)["ts"]).normalize().unique()
    assert len(days) > 15 and run.info.steps_done == len(days)  # a step on each fetched day
    log = (tmp_path / "reports" / "fetched" / FETCH_LOG).read_text()
    assert log.startswith(report.summary()) and "AAPL: " in log and "NVDA: " in log
    assert (data_dir / "cache" / "testbars").is_dir()  # the lab's cache, as lab.data.fetch


def test_a_failed_fetch_refuses_the_batch_naming_provider_symbol_and_reason_with_no_run(
    lab: Lab, db_url: str, server: BarServer, data_dir: Path, tmp_path: Path
) -> None:
    model(lab)
    server.fail("MSFT", "html")
    executor = RecordingExecutor(lab, server)
    runner = BatchRunner(
        parse_experiment(experiment(server, "failing")), db_url, tmp_path, executor
    )
    runs = len(lab.runs())
    with pytest.raises(
        BatchDataError, match=r"not started.*testbars MSFT: an HTML page \(HTTP 502\)"
    ):
        runner.run()
    assert executor.jobs == [] and len(lab.runs()) == runs
    assert runner.state() == {}  # nothing recorded as run
    log = (tmp_path / "failing" / FETCH_LOG).read_text()
    assert "MSFT: failed" in log and "1 failed" in log


def test_a_rerun_of_the_batch_fetches_from_the_cache_and_asks_no_answer_twice(
    lab: Lab, db_url: str, server: BarServer, data_dir: Path, tmp_path: Path
) -> None:
    model(lab)
    spec = parse_experiment(experiment(server, "again"))
    first = BatchRunner(spec, db_url, tmp_path, RecordingExecutor(lab, server, "failed")).run()
    assert first.fetches[0].sent == 3 and len(first.failed) == 1
    again = BatchRunner(spec, db_url, tmp_path, RecordingExecutor(lab, server)).run()
    (report,) = again.fetches
    assert report.ok and report.sent == 0 and report.reused == 3
    assert len(again.done) == 1
    assert sorted(server.counts.values()) == [1, 1, 1]  # each answer asked for once
    done = BatchRunner(spec, db_url, tmp_path, RecordingExecutor(lab, server)).run()
    assert done.skipped == 1 and done.fetches == []  # nothing left to run: nothing fetched


def test_a_batch_with_data_is_for_admins_and_a_refused_one_runs_nothing(
    lab: Lab, db_url: str, server: BarServer, data_dir: Path, tmp_path: Path
) -> None:
    model(lab)
    lab.users.add("ann@example.com", "Ann", username="ann")
    executor = RecordingExecutor(lab, server)
    spec = parse_experiment(experiment(server, "ann"))
    with pytest.raises(PermissionDeniedError, match="fetching market data"):
        BatchRunner(spec, db_url, tmp_path, executor, user="ann").run()
    assert executor.jobs == [] and server.total == 0


@pytest.mark.slow
def test_a_batch_file_with_data_runs_its_notebook_over_the_fetched_month(
    lab: Lab, db_url: str, server: BarServer, data_dir: Path, tmp_path: Path
) -> None:
    model(lab)
    spec = parse_experiment(experiment(server, "notebook"))
    summary = BatchRunner(spec, db_url, tmp_path / "reports", LocalExecutor()).run()
    assert summary.fetches[0].ok
    (result,) = summary.results
    assert result["status"] == "done", result["error"]
    run = lab.run(result["result"]["run_id"])
    assert run.status == "completed" and run.info.start.date().isoformat() == PERIOD["start"]
    assert run.info.steps_done > 15  # a step on each fetched day of December
