"""The MCP services over streamable HTTP, driven by the official ``mcp`` client."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from ttg_lab.config import resolve_settings
from ttg_lab.errors import ConfigError
from ttg_lab.lab import Lab
from ttg_lab.mcp_services.manager import ServiceManager
from ttg_lab.mcp_services.names import SERVICES
from ttg_lab.processes import identity_after_exec


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture()
def services(lab: Lab, tmp_path: Path) -> Iterator[ServiceManager]:
    manager = ServiceManager(replace(lab.config, state_dir=tmp_path / "state"))
    ports = dict(zip(SERVICES, free_ports(4), strict=True))
    statuses = manager.start(ports=ports, wait=60)
    try:
        assert all(s.healthy for s in statuses), [s for s in statuses if not s.healthy]
        yield manager
    finally:
        manager.stop()


def url_of(manager: ServiceManager, service: str) -> str:
    return next(s.url for s in manager.status() if s.service == service)


def signed(manager: ServiceManager, headers: dict[str, str] | None = None) -> dict[str, str]:
    """``headers`` with the token ``mcp start`` made for the manager's user."""
    return {"Authorization": f"Bearer {manager.token()}", **(headers or {})}


async def call(
    url: str, tool: str, args: dict[str, Any], headers: dict[str, str]
) -> tuple[bool, Any]:
    async with (
        httpx.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool(tool, args)
        text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
        try:
            return bool(result.isError), json.loads(text)
        except json.JSONDecodeError:
            return bool(result.isError), text


async def list_tools(url: str, headers: dict[str, str]) -> list[Any]:
    async with (
        httpx.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return list((await session.list_tools()).tools)


@pytest.mark.slow
def test_external_client_lists_and_calls_the_four_services(services: ServiceManager) -> None:
    listed = {s: asyncio.run(list_tools(url_of(services, s), signed(services))) for s in SERVICES}
    names = {s: sorted(t.name for t in tools) for s, tools in listed.items()}
    assert names == {
        "math": ["add", "divide", "max_units", "multiply", "subtract"],
        "search": ["get_information"],
        "trade": ["buy", "cover", "get_portfolio", "sell", "short"],
        "price": ["get_price_history", "get_price_local"],
    }
    buy = next(t for t in listed["trade"] if t.name == "buy")
    assert buy.inputSchema["properties"]["quantity"]["type"] == "number"
    assert set(buy.inputSchema["required"]) == {"symbol", "quantity"}

    session = signed(services, {"X-TTG-Session": "alice", "X-TTG-Clock": "2025-07-15"})
    price = url_of(services, "price")
    error, past = asyncio.run(
        call(price, "get_price_local", {"symbol": "AAPL", "date": "2025-07-14"}, session)
    )
    assert not error and past["close"] > 0
    error, future = asyncio.run(
        call(price, "get_price_local", {"symbol": "AAPL", "date": "2025-07-16"}, session)
    )
    assert error and "look-ahead refused" in future
    error, today = asyncio.run(call(price, "get_price_local", {"symbol": "AAPL"}, session))
    assert not error and set(today) == {"symbol", "time", "open"}

    math = url_of(services, "math")
    error, answer = asyncio.run(call(math, "multiply", {"a": 6, "b": 7}, signed(services)))
    assert not error and answer == 42

    trade = url_of(services, "trade")
    error, bought = asyncio.run(call(trade, "buy", {"symbol": "AAPL", "quantity": 10}, session))
    assert not error and bought["status"] == "filled" and bought["quantity"] == 10
    error, sold = asyncio.run(call(trade, "sell", {"symbol": "AAPL", "quantity": 4}, session))
    assert sold["status"] == "filled" and sold["position"] == 6
    error, oversold = asyncio.run(call(trade, "sell", {"symbol": "AAPL", "quantity": 100}, session))
    assert oversold["status"] == "rejected" and "6 AAPL held" in oversold["reason"]

    # A second session in parallel has its own cash, positions and clock.
    other = signed(
        services, {"X-TTG-Session": "bob", "X-TTG-Clock": "2025-09-02", "X-TTG-Cash": "500"}
    )

    async def both() -> list[tuple[bool, Any]]:
        return await asyncio.gather(
            call(trade, "get_portfolio", {}, signed(services, {"X-TTG-Session": "alice"})),
            call(trade, "get_portfolio", {}, other),
        )

    (_, alice), (_, bob) = asyncio.run(both())
    assert [p["symbol"] for p in alice["positions"]] == ["AAPL"] and alice["time"].startswith(
        "2025-07-15"
    )
    assert bob["positions"] == [] and bob["cash"] == 500 and bob["time"].startswith("2025-09-02")

    # The clock moves forward, never back.
    back = signed(services, {"X-TTG-Session": "alice", "X-TTG-Clock": "2025-07-01"})
    error, moved = asyncio.run(call(trade, "get_portfolio", {}, back))
    assert error and "cannot move back" in moved


@pytest.mark.slow
def test_run_sessions_are_read_only_views(services: ServiceManager, lab: Lab) -> None:
    model = lab.models.create("viewed", ai_model_id="baseline/buy_and_hold", tickers=["QQQ"])
    run = lab.start_run(
        model, start="2025-06-10", end="2025-06-20", background=False, path="direct"
    )
    headers = signed(services, {"X-TTG-Run": str(run.id)})
    error, portfolio = asyncio.run(call(url_of(services, "trade"), "get_portfolio", {}, headers))
    assert not error and portfolio["positions"][0]["symbol"] == "QQQ"
    error, refused = asyncio.run(
        call(url_of(services, "trade"), "buy", {"symbol": "QQQ", "quantity": 1}, headers)
    )
    assert refused["status"] == "rejected" and "read-only" in refused["reason"]


def test_exposing_services_needs_a_token(lab: Lab, tmp_path: Path) -> None:
    manager = ServiceManager(replace(lab.config, state_dir=tmp_path))
    with pytest.raises(ConfigError, match="without a token"):
        manager.start(host="0.0.0.0")


def test_a_users_services_show_only_their_own_runs(lab: Lab, tmp_path: Path) -> None:
    import ttg_lab

    period = {"start": "2025-06-10", "end": "2025-06-20", "background": False, "path": "direct"}
    theirs = lab.start_run(lab.models.create("admin's", ai_model_id="baseline/cash"), **period)
    lab.users.add("alice@team.org", "Alice")
    alice = ttg_lab.open(lab.config.db_url, user="alice")
    mine = alice.start_run(alice.models.create("alice's", ai_model_id="baseline/cash"), **period)
    assert alice.mcp.user == "alice"  # services started from her lab act as her
    manager = ServiceManager(replace(alice.config, state_dir=tmp_path), "alice")
    [status] = manager.start(["trade"], ports={"trade": free_ports(1)[0]}, wait=60)
    try:
        assert status.healthy
        error, answer = asyncio.run(
            call(status.url, "get_portfolio", {}, signed(manager, {"X-TTG-Run": str(mine.id)}))
        )
        assert not error and answer["cash"] == 10_000
        error, answer = asyncio.run(
            call(status.url, "get_portfolio", {}, signed(manager, {"X-TTG-Run": str(theirs.id)}))
        )
        assert error and f"no run {theirs.id}" in str(answer)
    finally:
        manager.stop()
        alice.close()


def test_stop_never_signals_a_process_a_stale_state_file_names(tmp_path: Path) -> None:
    """A state file naming some other live process (an entry without an identity, one
    whose start time differs as after pid reuse, one whose command line differs) is
    cleaned up by status and stop; that process is never signalled."""
    command = (sys.executable, "-c", "import time; time.sleep(120)")
    bystander = subprocess.Popen(command)
    try:
        manager = ServiceManager(replace(resolve_settings(), state_dir=tmp_path))
        # Read once the exec shows: for a moment after Popen returns, /proc shows no cmdline.
        real = identity_after_exec(bystander, command)
        assert real is not None and real.cmdline[0] == sys.executable
        where = {"pid": bystander.pid, "host": "127.0.0.1", "port": 9}
        manager.state_path.write_text(
            json.dumps(
                {
                    "math": where,
                    "search": {
                        **where,
                        "start_ticks": real.start_ticks + 1,
                        "cmdline": real.cmdline,
                    },
                    "trade": {
                        **where,
                        "start_ticks": real.start_ticks,
                        "cmdline": [sys.executable, "-m", "ttg_lab.cli", "mcp", "serve", "trade"],
                    },
                    "price": {**where, "start_ticks": "soon", "cmdline": real.cmdline},
                }
            )
        )
        assert not any(s.running or s.pid for s in manager.status())
        assert not manager.state_path.exists()  # cleaned up, not obeyed
        manager.state_path.write_text(json.dumps({"math": where}))
        assert manager.stop() == []
        assert bystander.poll() is None and not manager.state_path.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_run_views_over_http_need_the_token_mcp_start_creates(lab: Lab, tmp_path: Path) -> None:
    """``mcp start`` makes a per-user token (mode 0600 in the state folder); without it a
    local process gets 401, also on 127.0.0.1, and /health names no session. A service
    serving without a token refuses run views."""
    from ttg_lab.engine.reader import RunReader
    from ttg_lab.errors import PermissionDeniedError
    from ttg_lab.mcp_services.sessions import SessionRegistry

    run = lab.start_run(
        lab.models.create("private", ai_model_id="baseline/cash"),
        start="2025-06-10",
        end="2025-06-12",
        background=False,
        path="direct",
    )
    manager = ServiceManager(replace(lab.config, state_dir=tmp_path / "state"), "local")
    [status] = manager.start(["trade"], ports={"trade": free_ports(1)[0]}, wait=60)
    try:
        assert status.healthy
        assert manager.token_path.name == "mcp-token-local"
        assert manager.token_path.stat().st_mode & 0o777 == 0o600
        token = manager.token()
        assert token and len(token) >= 32
        base = status.url.removesuffix("/mcp")
        view = {"X-TTG-Run": str(run.id)}
        assert httpx.post(status.url, json={}, headers=view).status_code == 401
        assert httpx.get(f"{base}/health").status_code == 401
        error, answer = asyncio.run(call(status.url, "get_portfolio", {}, signed(manager, view)))
        assert not error and answer["cash"] == 10_000
        secret_name = {"X-TTG-Session": "alices-private-session"}
        asyncio.run(call(status.url, "get_portfolio", {}, signed(manager, secret_name)))
        health = httpx.get(f"{base}/health", headers=signed(manager))
        assert health.status_code == 200 and "sessions" not in health.json()
        assert "alices-private-session" not in health.text
        [again] = manager.start(["trade"], wait=0)  # a second start reuses the token
        assert manager.token() == token and again.pid == status.pid
    finally:
        manager.stop()
    unguarded = SessionRegistry(RunReader(lab.store, lab.user), run_views=False)
    with pytest.raises(PermissionDeniedError, match="run views need the service's token"):
        unguarded.context_for(view)
