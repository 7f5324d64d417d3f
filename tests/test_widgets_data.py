"""The dashboard's Data panel (admins): fetches and updates from a real local provider
server (tests/support/bar_server.py) in a thread, with progress, waits said, Stop, and the
report symbol by symbol; bad fields refused at the trait; ordinary users refused."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import ipywidgets as w
import pandas as pd
import pytest
import traitlets
from support.bar_server import LIMITS_ENV, BarServer
from support.clock import FakeClock

from ttg_lab.lab import Lab
from ttg_lab.market.fetch import FetchProgress
from ttg_lab.market.shipped import read_shipped
from widgets import data
from widgets.app import Dashboard
from widgets.data import DataController

SHIFT = pd.Timedelta(weeks=21)
"""The shipped bars moved past the store's (weekdays kept): bars the store lacks."""
NOW = datetime(2026, 1, 5, 22, tzinfo=UTC)


@pytest.fixture()
def server() -> Iterator[BarServer]:
    frame = read_shipped("us_daily")
    frame = frame[frame["symbol"].isin(["AAPL", "MSFT", "NVDA"])].copy()
    frame["ts"] = frame["ts"] + SHIFT
    with BarServer({"1d": frame.reset_index(drop=True)}) as running:
        yield running


@pytest.fixture()
def admin_lab(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lab:
    """The lab (as its admin) with its answer cache in the test's folder."""
    monkeypatch.setattr(lab.data, "config", dataclasses.replace(lab.config, data_dir=tmp_path))
    return lab


def form(ctl: DataController, server: BarServer, **values: object) -> DataController:
    """The form filled for a fetch of November and December from the test server."""
    fields = {
        "provider": "testbars",
        "market": "us",
        "symbols": "AAPL, MSFT",
        "start": "2025-11-01",
        "end": "2025-12-31",
        "base_url": server.base_url,
        **values,
    }
    for name, value in fields.items():
        assert ctl.set_field(name, value), ctl.error
    return ctl


def finished(ctl: DataController) -> DataController:
    ctl.wait(60)
    assert not ctl.running
    return ctl


def test_a_fetch_shows_progress_and_ends_with_the_report_rows(
    admin_lab: Lab, server: BarServer
) -> None:
    ctl = form(DataController(admin_lab, clock=FakeClock(NOW)), server)
    events: list[FetchProgress] = []
    ctl.observe(lambda change: events.append(change["new"]) if change["new"] else None, "progress")
    assert ctl.fetch(), ctl.error
    finished(ctl)
    assert ctl.error == "", ctl.error
    assert [e.message for e in events][:2] == ["AAPL: request 1 of 2", "AAPL: request 2 of 2"]
    assert [(e.done, e.total) for e in events][-1] == (2, 2)
    assert [(r.symbol, r.error, r.sent, r.conflicts) for r in ctl.rows] == [
        ("AAPL", "", 2, 0),
        ("MSFT", "", 2, 0),
    ]
    assert all(r.added > 0 and r.dataset == "testbars us 1d" for r in ctl.rows)
    assert "2 of 2 symbol(s) merged" in ctl.message
    again = form(DataController(admin_lab, clock=FakeClock(NOW)), server)
    assert again.fetch() and finished(again).rows[0].skipped == ctl.rows[0].added
    assert again.rows[0].added == 0 and again.rows[0].cached == 2  # answers kept: none sent


def test_a_wait_for_the_rate_limit_is_said_in_the_view(
    admin_lab: Lab, server: BarServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LIMITS_ENV, "2/60")
    ctl = form(DataController(admin_lab, clock=FakeClock(NOW)), server)
    panel = data.view(ctl)
    bar, label = panel.children[6], panel.children[7]
    assert isinstance(bar, w.IntProgress) and isinstance(label, w.HTML)
    shown: list[str] = []
    ctl.observe(lambda _: shown.append(label.value), "progress")
    assert ctl.fetch(), ctl.error
    finished(ctl)
    assert "1 of 2 symbol(s): waiting 60 s: testbars allows 2 requests a minute" in shown
    assert (bar.value, bar.max) == (2, 2) and ctl.error == ""


def test_a_bad_symbol_shows_its_error_row_and_the_others_merge(
    admin_lab: Lab, server: BarServer
) -> None:
    server.fail("MSFT", "html")
    ctl = form(DataController(admin_lab, clock=FakeClock(NOW)), server)
    panel = data.view(ctl)
    assert ctl.fetch(), ctl.error
    finished(ctl)
    rows = {r.symbol: r for r in ctl.rows}
    assert rows["MSFT"].error == "testbars MSFT: an HTML page (HTTP 502)"
    assert rows["MSFT"].added == 0 and rows["AAPL"].error == "" and rows["AAPL"].added > 0
    assert "1 failed" in ctl.message
    table = panel.children[-1]
    assert isinstance(table, w.HTML) and "an HTML page (HTTP 502)" in table.value
    assert "Traceback" not in table.value + ctl.message + ctl.error


def test_a_revised_bar_shows_as_a_conflict_row_unless_replace(
    admin_lab: Lab, server: BarServer
) -> None:
    early = form(
        DataController(admin_lab, clock=FakeClock(datetime(2025, 12, 15, 23, tzinfo=UTC))), server
    )
    assert early.fetch() and finished(early).error == ""
    daily = server.bars["1d"]
    row = daily.index[(daily["symbol"] == "AAPL") & (daily["ts"] == pd.Timestamp("2025-12-10"))]
    daily.loc[row, "close"] = daily.loc[row, "close"] + 0.01  # the provider revised a bar
    ctl = form(DataController(admin_lab, clock=FakeClock(NOW)), server)
    assert ctl.fetch() and finished(ctl).error == ""
    aapl = ctl.rows[0]
    assert (aapl.symbol, aapl.conflicts, aapl.added) == ("AAPL", 1, 0)
    assert "1 bar(s) differ from the stored ones" in aapl.error
    assert ctl.set_field("replace", True) and ctl.fetch()
    assert finished(ctl).rows[0].replaced == 1 and ctl.rows[0].error == ""


def test_a_badly_spelled_symbol_is_refused_as_the_status_with_nothing_asked(
    admin_lab: Lab, server: BarServer
) -> None:
    ctl = form(DataController(admin_lab, clock=FakeClock(NOW)), server, symbols="AAPL, 12$x")
    assert ctl.fetch()  # refused in the thread, before any request
    finished(ctl)
    assert "'12$x': not us symbols" in ctl.error and "Traceback" not in ctl.error
    assert server.total == 0 and ctl.rows == []


def test_stop_ends_a_fetch_between_requests_and_the_kernel_is_free_meanwhile(
    admin_lab: Lab, server: BarServer
) -> None:
    server.hold_after = 1  # AAPL's December answer waits until the test lets it go
    ctl = form(DataController(admin_lab, clock=FakeClock(NOW)), server)
    began = time.monotonic()
    assert ctl.fetch(), ctl.error
    assert time.monotonic() - began < 2 and ctl.running  # the fetch goes on in its thread
    deadline = time.monotonic() + 20
    while server.total < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not ctl.fetch() and "still going" in ctl.error
    assert ctl.stop() and ctl.message == "stopping before the next request"
    server.unheld.set()
    finished(ctl)
    assert [(r.symbol, r.error) for r in ctl.rows] == [("AAPL", ""), ("MSFT", data.STOPPED)]
    assert server.counts[("MSFT", "2025-11")] == 0 and "stopped, 1 not fetched" in ctl.message
    assert not ctl.stop() and ctl.error == "no fetch is going"


def test_update_all_brings_fetched_datasets_up_to_date(admin_lab: Lab, server: BarServer) -> None:
    server.release_until(datetime(2025, 12, 10))
    first = form(DataController(admin_lab, clock=FakeClock(NOW)), server)
    assert first.fetch() and finished(first).error == ""
    server.release_until(None)
    ctl = DataController(admin_lab, clock=FakeClock(NOW))
    assert ctl.set_field("provider", "testbars") and ctl.set_field("base_url", server.base_url)
    assert ctl.update_all(), ctl.error
    finished(ctl)
    assert ctl.error == "" and [r.symbol for r in ctl.rows] == ["AAPL", "MSFT"]
    assert all(r.added > 0 and r.error == "" for r in ctl.rows)


def test_an_ordinary_user_neither_sees_the_panel_nor_fetches(
    admin_lab: Lab, server: BarServer
) -> None:
    admin_lab.user.role = "user"
    assert "Data" not in [title for title, _, _ in Dashboard(admin_lab).panels]
    ctl = form(DataController(admin_lab), server)
    assert "Admins only" in data.view(ctl).value  # type: ignore[attr-defined]
    assert not ctl.fetch() and "fetching market data needs an admin" in ctl.error
    assert not ctl.update_all() and "updating market data needs an admin" in ctl.error
    assert not ctl.running and server.total == 0


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("interval", "5min", "interval '5min': choose one of 1d, 60min"),
        ("start", "2025-13-01", "start of the fetch '2025-13-01'"),
        ("end", "yesterday", "end of the fetch 'yesterday'"),
        ("provider", "nope", "unknown data provider 'nope'"),
        ("market", "mars", "mars"),
        ("universe", "dow30", "unknown universe 'dow30'"),
        ("base_url", "ftp://example.com", "base URL 'ftp://example.com'"),
    ],
)
def test_a_bad_field_is_refused_at_the_trait_and_blocks_the_fetch(
    admin_lab: Lab, server: BarServer, field: str, value: str, said: str
) -> None:
    ctl = form(DataController(admin_lab, clock=FakeClock(NOW)), server)
    before = getattr(ctl, field)
    with pytest.raises(traitlets.TraitError) as refused:
        setattr(ctl, field, value)
    assert said in str(refused.value) and getattr(ctl, field) == before
    assert not ctl.set_field(field, value) and said in ctl.error  # as the form types it
    assert not ctl.fetch() and f"correct the {field.replace('_', ' ')} first" in ctl.error
    assert not ctl.running and server.total == 0
    assert ctl.set_field(field, before) and ctl.fetch(), ctl.error  # corrected: it goes
    assert finished(ctl).error == ""
