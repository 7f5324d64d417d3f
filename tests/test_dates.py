"""Every date input goes through one parser: a naive exchange-local datetime, or a clear
error naming the value and what it was for; an aware time is converted to the market's
time zone where the market is known and refused where it is not."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastmcp import Client
from sqlalchemy import func, select

from ttg_lab.analyst.citations import resolve
from ttg_lab.analyst.reader import AnalystReader
from ttg_lab.analyst.tools import AnalysisTools
from ttg_lab.batch.experiment import ExperimentError, _check_parameters, expand
from ttg_lab.broker.costs import COST_PRESETS
from ttg_lab.broker.portfolio import Portfolio
from ttg_lab.dates import parse_date, parse_optional_date
from ttg_lab.engine.context import RunContext
from ttg_lab.engine.reader import RunReader
from ttg_lab.engine.stored_reasoning import search_reasoning
from ttg_lab.errors import ValidationError
from ttg_lab.lab import Lab
from ttg_lab.market.cache import data_fingerprint, price_index
from ttg_lab.market.loader import read_price_frame
from ttg_lab.market.markets import get_market
from ttg_lab.mcp_services.servers import build_service
from ttg_lab.mcp_services.sessions import SessionRegistry
from ttg_lab.store.schema import TradingRun
from ttg_lab.tools import price
from widgets.reasoning import ReasoningController
from widgets.run_control import RunControlController

NEW_YORK = "America/New_York"
AWARE = "2025-07-01T00:00:00-12:00"
"""Midnight at UTC-12 is 12:00 UTC: 08:00 in New York, on July 1 still."""

BAD: dict[str, tuple[Any, str]] = {
    "empty text": ("", "it is empty"),
    "blank text": ("   ", "it is empty"),
    "NaT text": ("NaT", "not an ISO-8601 date"),
    "pandas NaT": (pd.NaT, "missing value"),
    "numpy NaT": (np.datetime64("NaT"), "missing value"),
    "None": (None, "a date is required"),
    "garbage": ("next tuesday", "not an ISO-8601 date"),
    "relative word": ("now", "not an ISO-8601 date"),
    "ambiguous order": ("07/01/2025", "not an ISO-8601 date"),
    "impossible day": ("2025-02-30", "day is out of range"),
    "int": (20250701, "a number is not a date"),
    "float": (1.5, "a number is not a date"),
    "NaN": (float("nan"), "a number is not a date"),
    "bool": (True, "a bool is not a date"),
    "far future": ("9999-12-31", "out of range"),
    "far past": ("0001-01-01", "out of range"),
    "datetime out of range": (datetime(1, 1, 1), "out of range"),
    "a list": (["2025-07-01"], "a list is not a date"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_every_bad_date_is_refused_naming_the_value_and_its_purpose(case: str) -> None:
    value, why = BAD[case]
    with pytest.raises(ValidationError) as err:
        parse_date(value, "start of the run", NEW_YORK)
    message = str(err.value)
    assert message.startswith("start of the run ") and why in message
    assert repr(value)[:40] in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-07-01", datetime(2025, 7, 1)),
        ("2025-07-01 10:30", datetime(2025, 7, 1, 10, 30)),
        ("2025-07-01T10:30:15", datetime(2025, 7, 1, 10, 30, 15)),
        (" 2025-07-01 ", datetime(2025, 7, 1)),
        (date(2025, 7, 1), datetime(2025, 7, 1)),
        (datetime(2025, 7, 1, 10), datetime(2025, 7, 1, 10)),
        (pd.Timestamp("2025-07-01 10:00"), datetime(2025, 7, 1, 10)),
        (np.datetime64("2025-07-01T10:00"), datetime(2025, 7, 1, 10)),
        (AWARE, datetime(2025, 7, 1, 8)),
        ("2025-07-01T14:00Z", datetime(2025, 7, 1, 10)),
        (pd.Timestamp("2025-07-01 14:00", tz="UTC"), datetime(2025, 7, 1, 10)),
    ],
)
def test_dates_become_naive_exchange_local_times(value: Any, expected: datetime) -> None:
    parsed = parse_date(value, "start", NEW_YORK)
    assert parsed == expected and parsed.tzinfo is None and type(parsed) is datetime


def test_an_aware_time_without_a_market_is_refused_and_none_is_only_not_given() -> None:
    with pytest.raises(ValidationError, match=r"start '2025-07-01T00:00:00-12:00' carries a UTC"):
        parse_date(AWARE, "start")
    assert parse_optional_date(None, "start") is None
    with pytest.raises(ValidationError, match="it is empty"):
        parse_optional_date("", "start")


# ------------------------------------------------------------------------- the API


def run_count(lab: Lab) -> int:
    with lab.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(TradingRun)) or 0)


@pytest.mark.parametrize("value", ["", "NaT", pd.NaT, "garbage", 20250701, True, "9999-12-31"])
def test_a_run_with_a_bad_start_or_end_is_refused_before_anything_is_recorded(
    lab: Lab, value: Any
) -> None:
    model = lab.models.create("dates", ai_model_id="baseline/cash", tickers=["AAPL"])
    before = run_count(lab)
    for bound in ("start", "end"):
        with pytest.raises(ValidationError, match=rf"^{bound} .* is not a date"):
            lab.start_run(model, path="direct", background=False, **{bound: value})
    assert run_count(lab) == before


def test_an_aware_run_period_is_read_in_the_markets_time_zone(lab: Lab) -> None:
    model = lab.models.create("aware", ai_model_id="baseline/cash", tickers=["AAPL"])
    daily = lab.start_run(model, path="direct", start=AWARE, end="2025-07-02", background=False)
    assert (daily.info.start, daily.info.end) == (
        datetime(2025, 7, 1),
        datetime(2025, 7, 2),
    )
    hourly = lab.start_run(
        model,
        mode="intraday",
        path="direct",
        start="2025-10-02T14:00:00Z",  # 10:00 in New York (EDT)
        end="2025-10-02T17:00:00+00:00",  # 13:00
        background=False,
    )
    assert (hourly.info.start, hourly.info.end) == (
        datetime(2025, 10, 2, 10),
        datetime(2025, 10, 2, 13),
    )


def test_leaderboard_and_reasoning_filters_parse_dates_the_same_way(lab: Lab) -> None:
    model = lab.models.create("filters", ai_model_id="baseline/momentum", tickers=["AAPL"])
    run = lab.start_run(
        model, path="direct", start="2025-07-01", end="2025-07-10", background=False
    )
    for bad in ("", "NaT", "garbage"):
        with pytest.raises(ValidationError, match=r"^leaderboard start .* is not a date"):
            lab.leaderboard(start=bad)
        with pytest.raises(ValidationError, match=r"^reasoning end .* is not a date"):
            search_reasoning(lab.store, run_id=run.id, end=bad)
    with pytest.raises(ValidationError, match="no market says which local time"):
        lab.leaderboard(start=AWARE)  # across markets an instant names no local day
    assert "filters" in set(lab.leaderboard(market="us", start="2025-07-01T04:00:00Z")["model"])
    assert "filters" not in set(lab.leaderboard(market="us", start="2025-07-02T04:00:00Z")["model"])
    # the run's market is known: an aware bound is converted, and a bare end day is whole
    frame, total = search_reasoning(lab.store, run_id=run.id, start=AWARE, end="2025-07-01")
    assert total > 0 and set(frame["ts"].dt.date) == {date(2025, 7, 1)}


def test_analyst_windows_and_date_citations_use_the_parser(lab: Lab) -> None:
    model = lab.models.create("analysed", ai_model_id="baseline/momentum", tickers=["AAPL"])
    run = lab.start_run(
        model, path="direct", start="2025-07-01", end="2025-07-10", background=False
    )
    tools = AnalysisTools(AnalystReader(lab.store, lab.user), run.id)
    with pytest.raises(ValidationError, match=r"^start '' is not a date"):
        tools.calculate_metrics(start="")
    with pytest.raises(ValidationError, match=r"^end 'NaT' is not a date"):
        tools.analyze_trades(end="NaT")
    window = tools.calculate_metrics(start=AWARE, end="2025-07-03T12:00:00+00:00")
    assert (window["start"], window["end"]) == ("2025-07-01", "2025-07-03")
    cited = {
        c.ref: c.valid for c in resolve(tools.reader, "[date:2025-07-01] [date:2025-02-30]", set())
    }
    assert cited == {"2025-07-01": True, "2025-02-30": False}


def test_data_reads_parse_their_bounds_in_the_markets_time_zone(lab: Lab) -> None:
    with pytest.raises(ValidationError, match=r"^start of the bars '' is not a date"):
        read_price_frame(lab.store, "us", "1d", ["AAPL"], start="")
    frame = read_price_frame(
        lab.store, "us", "60min", ["AAPL"], start="2025-10-02T14:00:00Z", end="2025-10-02"
    )
    assert frame["ts"].min() == pd.Timestamp("2025-10-02 10:00")
    assert frame["ts"].max() == pd.Timestamp("2025-10-02 15:00")  # the whole last day


def test_batch_periods_are_checked_by_the_parser() -> None:
    with pytest.raises(ExperimentError, match=r"run 1: start '2025-13-01' is not a date"):
        _check_parameters({"start": "2025-13-01"}, "run 1")
    with pytest.raises(ExperimentError, match="end 2025-06-01 is before start"):
        _check_parameters({"start": "2025-06-10", "end": "2025-06-01"}, "run 1")
    (period,) = expand(
        {"base": {}, "grid": {"period": [{"start": date(2025, 7, 1), "end": AWARE}]}}
    )
    assert _check_parameters(period, "grid")["start"] == "2025-07-01"


# --------------------------------------------------------------- tools and sessions


def daily_context(lab: Lab) -> RunContext:
    index = price_index(lab.store, "us", "1d", data_fingerprint(lab.store, "us", "1d"))
    ctx = RunContext(
        run_id=0,
        market=get_market("us"),
        index=index,
        tickers=frozenset({"AAPL"}),
        portfolio=Portfolio(10_000.0),
        costs=COST_PRESETS["zero"],
    )
    ctx.advance(0, datetime(2025, 7, 15))
    return ctx


def test_the_price_tools_date_goes_through_the_parser_on_both_paths(lab: Lab) -> None:
    ctx = daily_context(lab)
    for bad in ("", "NaT", "yesterday", "2025-07-14T25:00"):
        with pytest.raises(ValidationError, match=r"^date .* is not a date"):
            price.get_price_local(ctx, "AAPL", bad)
    # the 14th's bar in New York, asked for as an instant in UTC
    bar = price.get_price_local(ctx, "AAPL", "2025-07-14T20:00:00Z")
    assert bar["time"] == "2025-07-14" and bar["close"] > 0
    # asked for today at the close as an instant, the agent still sees only the open
    assert set(price.get_price_local(ctx, "AAPL", "2025-07-15T21:00:00Z")) == {
        "symbol",
        "time",
        "open",
    }

    async def over_mcp() -> Any:
        async with Client(build_service("price", lambda: ctx)) as client:
            return await client.call_tool(
                "get_price_local", {"symbol": "AAPL", "date": ""}, raise_on_error=False
            )

    answer = asyncio.run(over_mcp())
    assert answer.is_error and "date '' is not a date: it is empty" in answer.content[0].text


def test_the_session_clock_header_goes_through_the_parser(lab: Lab) -> None:
    sessions = SessionRegistry(RunReader(lab.store, lab.user))
    for bad in ("", "NaT", "soon"):
        with pytest.raises(ValidationError, match=r"^x-ttg-clock .* is not a date"):
            sessions.context_for({"X-TTG-Session": f"bad {bad}", "X-TTG-Clock": bad})
    ctx = sessions.context_for({"X-TTG-Session": "aware", "X-TTG-Clock": AWARE})
    assert ctx.clock == datetime(2025, 7, 1)
    with pytest.raises(ValidationError, match=r"^x-ttg-clock '' is not a date"):
        sessions.context_for({"X-TTG-Session": "aware", "X-TTG-Clock": ""})


# --------------------------------------------------------------------- the faces


def test_panels_show_a_bad_date_as_a_message_and_a_blank_field_as_the_default(lab: Lab) -> None:
    lab.models.create("panel dates", ai_model_id="baseline/cash", tickers=["AAPL"])
    ctl = RunControlController(lab)
    ctl.model, ctl.path, ctl.start, ctl.end = "panel-dates", "direct", "NaT", ""
    assert not ctl.start_run()
    assert ctl.error.startswith("start 'NaT' is not a date")
    ctl.start, ctl.end = "  ", "2025-06-11"
    assert ctl.start_run(), ctl.error
    assert ctl.wait(60) == "completed"
    reasoning = ReasoningController(lab)
    reasoning.choose("panel-dates")
    reasoning.start = "2025-06-31"
    reasoning.search()
    assert reasoning.error.startswith("reasoning start '2025-06-31' is not a date")


TTG_LAB = Path(sys.executable).parent / "ttg-lab"


def test_the_command_line_refuses_bad_dates_in_one_clear_line(db_url: str) -> None:
    env = {**os.environ, "TTG_LAB_DB_URL": db_url, "COLUMNS": "200"}

    def ttg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(TTG_LAB), *args], capture_output=True, text=True, env=env, timeout=300
        )

    assert ttg("models", "create", "cli dates", "--ai-model", "baseline/cash").returncode == 0
    for args, message in (
        (("run", "cli-dates", "--start", ""), "error: start '' is not a date: it is empty"),
        (("run", "cli-dates", "--end", "NaT"), "error: end 'NaT' is not a date"),
        (("leaderboard", "--start", "2025-13-01"), "error: leaderboard start '2025-13-01'"),
    ):
        result = ttg(*args)
        assert result.returncode == 1 and message in result.stdout, result.stdout
        assert "Traceback" not in result.stdout + result.stderr
    result = ttg("run", "cli-dates", "--path", "direct", "--start", AWARE, "--end", "2025-07-01")
    assert result.returncode == 0 and "2025-07-01 .. 2025-07-01" in result.stdout, result.stdout
