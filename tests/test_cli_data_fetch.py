"""``ttg-lab data fetch`` / ``data update`` and ``lab.data.fetch`` as a user runs them: real
processes on a private store, fetching over HTTP from the test bar server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from support.bar_server import BarServer

import ttg_lab
from ttg_lab.errors import PermissionDeniedError, ValidationError
from ttg_lab.lab import Lab
from ttg_lab.market.loader import read_price_frame
from ttg_lab.market.shipped import read_shipped

TESTS = Path(__file__).resolve().parent
SHIFT = pd.Timedelta(weeks=21)
"""The shipped bars moved past the store's (weekdays kept): bars the store lacks."""
SYMBOLS = ("AAPL", "MSFT", "NVDA")
LAUNCH = (
    f"import sys; sys.path.insert(0, {str(TESTS)!r}); import support.bar_server; "
    "from ttg_lab.cli import main; sys.argv[0] = 'ttg-lab'; main()"
)
"""The ttg-lab command with the test provider registered."""


@pytest.fixture()
def server() -> Iterator[BarServer]:
    frame = read_shipped("us_daily")
    frame = frame[frame["symbol"].isin(SYMBOLS)].copy()
    frame["ts"] = frame["ts"] + SHIFT
    with BarServer({"1d": frame.reset_index(drop=True)}) as running:
        yield running


def command(db_url: str, data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", LAUNCH, "--db", db_url, *args]


def environment(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "TTG_LAB_DATA_DIR": str(data_dir), "COLUMNS": "200"}


def ttg(db_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(db_url, data_dir, *args),
        capture_output=True,
        text=True,
        env=environment(data_dir),
        timeout=120,
    )


def fetch_args(server: BarServer, *extra: str) -> tuple[str, ...]:
    return (
        "data", "fetch", "--provider", "testbars", "--market", "us", "--symbols",
        ",".join(SYMBOLS), "--start", "2025-11-01", "--end", "2025-12-31",
        "--base-url", server.base_url, *extra,
    )  # fmt: skip


def stored_bars(db_url: str) -> pd.DataFrame:
    lab = ttg_lab.open(db_url)
    try:
        return read_price_frame(lab.store, "us", "1d", list(SYMBOLS), start="2025-11-01")
    finally:
        lab.close()


def served(server: BarServer, last: str = "2025-12-31") -> pd.DataFrame:
    frame = server.bars["1d"]
    inside = (frame["ts"] >= pd.Timestamp("2025-11-01")) & (frame["ts"] <= pd.Timestamp(last))
    return frame[inside].sort_values(["symbol", "ts"]).reset_index(drop=True)


def test_data_fetch_merges_and_a_rerun_sends_nothing(
    db_url: str, server: BarServer, tmp_path: Path
) -> None:
    result = ttg(db_url, tmp_path, *fetch_args(server))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 of 3 symbol(s) merged" in result.stdout
    pd.testing.assert_frame_equal(stored_bars(db_url), served(server))
    assert (tmp_path / "cache" / "testbars").is_dir()  # under the lab's data folder
    again = ttg(db_url, tmp_path, *fetch_args(server))
    assert "0 request(s) sent, 6 answer(s) from the cache" in again.stdout
    assert server.total == 6


def test_a_killed_fetch_rerun_asks_no_answer_twice_and_stores_what_an_unkilled_one_does(
    db_url: str, server: BarServer, tmp_path: Path
) -> None:
    server.hold_after = 3  # AAPL's two months and MSFT's November answered, then held
    process = subprocess.Popen(
        command(db_url, tmp_path, *fetch_args(server)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment(tmp_path),
    )
    deadline = time.monotonic() + 60
    while server.total < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.total == 4, "the fetch never reached its fourth request"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    server.hold_after = None
    server.unheld.set()
    result = ttg(db_url, tmp_path, *fetch_args(server))
    assert result.returncode == 0, result.stdout + result.stderr
    in_flight = ("MSFT", "2025-12")  # killed while waiting for it: no answer was kept
    assert server.counts[in_flight] == 2
    assert all(n == 1 for key, n in server.counts.items() if key != in_flight), server.counts
    pd.testing.assert_frame_equal(stored_bars(db_url), served(server))


def test_data_fetch_exits_1_listing_each_failed_symbol(
    db_url: str, server: BarServer, tmp_path: Path
) -> None:
    server.fail("MSFT", "html")
    result = ttg(db_url, tmp_path, *fetch_args(server))
    assert result.returncode == 1
    assert "MSFT: testbars MSFT: an HTML page (HTTP 502)" in result.stdout
    assert "2 of 3 symbol(s) merged" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_data_fetch_bad_input_is_one_clear_line(
    db_url: str, server: BarServer, tmp_path: Path
) -> None:
    result = ttg(db_url, tmp_path, *fetch_args(server, "--universe", "nasdaq100"))
    assert result.returncode == 1
    assert "error: give either symbols or a universe to fetch" in result.stdout
    result = ttg(
        db_url, tmp_path, "data", "fetch", "--provider", "nosuch", "--market", "us",
        "--symbols", "AAPL", "--base-url", server.base_url,
    )  # fmt: skip
    assert result.returncode == 1 and "nosuch" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert server.total == 0


def test_data_update_brings_the_fetched_dataset_up_to_date(
    db_url: str, server: BarServer, tmp_path: Path
) -> None:
    args = list(fetch_args(server))
    args[args.index("2025-12-31")] = "2025-11-30"
    assert ttg(db_url, tmp_path, *args).returncode == 0
    pd.testing.assert_frame_equal(stored_bars(db_url), served(server, "2025-11-30"))
    result = ttg(
        db_url, tmp_path, "data", "update", "--provider", "testbars", "--base-url", server.base_url
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 of 3 symbol(s) merged" in result.stdout
    pd.testing.assert_frame_equal(stored_bars(db_url), served(server, "2027-01-01"))


def test_lab_data_fetch_takes_a_universe_and_is_for_admins(
    lab: Lab, server: BarServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import support.bar_server  # noqa: F401 (registers the test provider)

    monkeypatch.setattr(lab.data, "config", dataclasses.replace(lab.config, data_dir=tmp_path))
    with pytest.raises(ValidationError, match="universe 'sse50' is of the cn market"):
        lab.data.fetch("testbars", "us", universe="sse50", base_url=server.base_url)
    report = lab.data.fetch(
        "testbars",
        "us",
        symbols=["AAPL"],
        start=date(2025, 11, 1),
        end="2025-11-30",
        base_url=server.base_url,
    )
    assert report.ok and report.results[0].merge is not None
    lab.users.add("ann@example.com", "Ann", username="ann")
    ann = ttg_lab.open(lab.store.engine.url.render_as_string(hide_password=False), user="ann")
    try:
        with pytest.raises(PermissionDeniedError):
            ann.data.fetch("testbars", "us", symbols=["AAPL"], base_url=server.base_url)
        with pytest.raises(PermissionDeniedError):
            ann.data.update()
    finally:
        ann.close()


def test_universes_are_the_shipped_symbols_a_provider_can_quote() -> None:
    from ttg_lab.market.universes import universe_symbols

    nasdaq = universe_symbols("nasdaq100", "us")
    assert len(nasdaq) == 102 and {"AAPL", "QQQ"} <= set(nasdaq)
    crypto = universe_symbols("crypto", "crypto")
    assert "BTC-USDT" in crypto and "CD5" not in crypto  # an index the lab computes
    with pytest.raises(ttg_lab.errors.NotFoundError, match="unknown universe 'sp500'"):
        universe_symbols("sp500", "us")


def test_data_fetch_prints_what_the_provider_noted_once(capsys: pytest.CaptureFixture[str]) -> None:
    """A provider's note (a free key's shorter history) reaches the user, once per fetch."""
    from ttg_lab.cli.data import _print_reports
    from ttg_lab.market.fetch import FetchReport, SymbolResult
    from ttg_lab.market.loader import MergeResult

    note = "a free key gets the last 100 daily bars only"
    results = tuple(
        SymbolResult(s, MergeResult(f"fetch:{s}", "us", "1d", "test", added=1), None, notes=(note,))
        for s in SYMBOLS
    )
    _print_reports(
        [FetchReport("testbars", "us", "1d", date(2025, 1, 2), date(2025, 2, 3), results)]
    )
    out = capsys.readouterr().out
    assert out.count(note) == 1, out


def test_data_fetch_news_stores_dated_news_paced_and_cached_without_the_key(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ttg-lab data fetch-news``: Alpha Vantage NEWS_SENTIMENT into the news store through
    the same rate limits and raw-answer cache as bar fetches; a second fetch adds nothing."""
    from support.alphavantage_server import AlphaVantageServer

    key = "NEWSKEY0123456789"
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", key)
    args = ("data", "fetch-news", "--start", "2025-08-01", "--end", "2025-10-30")
    with AlphaVantageServer() as server:
        first = ttg(db_url, tmp_path, *args, "--base-url", server.base_url)
        again = ttg(db_url, tmp_path, *args, "--base-url", server.base_url)
        asked = len(server.queries)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "(1 undated: stored, never served)" in first.stdout, first.stdout
    assert again.returncode == 0 and " 0 added" in again.stdout, again.stdout
    assert asked == 2
    kept = [p for p in (tmp_path / "cache" / "alphavantage").rglob("*") if p.is_file()]
    assert any(p.suffix == ".body" for p in kept)
    assert not [p for p in kept if key.encode() in p.read_bytes()]
    assert key not in first.stdout + first.stderr + again.stdout + again.stderr
