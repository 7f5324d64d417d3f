"""Fast start: what a cold process imports, checked in fresh interpreters.

The direct path never loads the chat path's packages, opening a store that is up to date
never loads Alembic, and nothing builds ``rfc3987_syntax``'s grammars at import.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from fastmcp import Client, FastMCP
from mcp.server.lowlevel import Server
from support.imports import loaded_after

from ttg_lab.deferred import Deferral, DeferredFinder, DeferredModule
from ttg_lab.engine.context import RunContext
from ttg_lab.errors import ConfigError
from ttg_lab.mcp_services import memory
from ttg_lab.mcp_services.memory import build_services, memory_session
from ttg_lab.mcp_services.servers import build_service
from ttg_lab.store.database import (
    Store,
    alembic_config,
    current_revisions,
    head_revisions,
    migrate,
)

CHAT_ONLY = ("langchain", "langchain_core", "langgraph", "langsmith", "fastmcp", "mcp")
"""Packages only the chat path needs."""

NOT_ON_THE_DIRECT_PATH = (*CHAT_ONLY, "alembic", "httpx")
"""What a direct run of a store at the head never loads: the chat path, migrations, and
the HTTP client (only the MCP services' health checks use it)."""

PERIOD = ("--start", "2025-06-10", "--end", "2025-07-10")


def create_momentum(db_url: str) -> None:
    import ttg_lab

    lab = ttg_lab.open(db_url)
    try:
        lab.models.create("mom", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    finally:
        lab.close()


CLI_RUN = """
from importlib.metadata import entry_points
main = entry_points(group="console_scripts", name="ttg-lab")[0].load()
main(["run", "mom", {period}, "--path", "direct"])
"""


@pytest.mark.slow
def test_a_direct_run_from_the_command_line_never_imports_the_chat_path(db_url: str) -> None:
    create_momentum(db_url)
    period = ", ".join(repr(p) for p in PERIOD)
    loaded = loaded_after(
        CLI_RUN.format(period=period), *NOT_ON_THE_DIRECT_PATH, env={"TTG_LAB_DB_URL": db_url}
    )
    assert loaded == []


@pytest.mark.slow
def test_a_direct_run_through_the_api_never_imports_the_chat_path(db_url: str) -> None:
    create_momentum(db_url)
    code = f"""
import ttg_lab
lab = ttg_lab.open({db_url!r})
run = lab.start_run("mom", start="2025-06-10", end="2025-07-10", path="direct", background=False)
assert run.wait() == "completed"
"""
    assert loaded_after(code, *NOT_ON_THE_DIRECT_PATH) == []


@pytest.mark.slow
def test_a_baseline_chat_run_never_imports_the_openai_client(db_url: str) -> None:
    """A baseline's chat model is local: the OpenAI client (and JSON-action mode, which
    imports it) load only for a provider's model or a run that switches to JSON actions."""
    create_momentum(db_url)
    period = ", ".join(repr(p) for p in PERIOD)
    code = CLI_RUN.format(period=period).replace('"direct"', '"chat"')
    watch = ("openai", "langchain_openai", "ttg_lab.llm.json_actions")
    assert loaded_after(code, *watch, env={"TTG_LAB_DB_URL": db_url}) == []


def test_opening_a_store_at_head_never_imports_alembic(db_url: str) -> None:
    code = f"""
from ttg_lab.store.database import Store
Store({db_url!r}).migrate()
"""
    assert loaded_after(code, "alembic") == []


def test_a_store_behind_head_is_migrated_at_open(empty_db_url: str) -> None:
    store = Store(empty_db_url)
    migrate(store.engine, "0006")
    assert current_revisions(store.engine) == {"0006"}
    store.migrate()
    assert current_revisions(store.engine) == head_revisions()
    store.dispose()


def test_an_empty_store_is_created_at_open(empty_db_url: str) -> None:
    store = Store(empty_db_url)
    assert current_revisions(store.engine) == frozenset()
    store.migrate()
    assert current_revisions(store.engine) == head_revisions()
    store.dispose()


def test_head_read_from_the_migration_files_is_alembics_head(tmp_path: Path) -> None:
    script = ScriptDirectory.from_config(alembic_config(Store(f"sqlite:///{tmp_path}/x").engine))
    assert head_revisions() == frozenset(script.get_heads())


def write_migrations(folder: Path, files: dict[str, str]) -> Path:
    versions = folder / "versions"
    versions.mkdir(parents=True)
    for name, source in files.items():
        (versions / name).write_text(source)
    return versions


def test_head_of_branches_merges_and_typed_declarations(tmp_path: Path) -> None:
    versions = write_migrations(
        tmp_path,
        {
            "a.py": 'revision = "a"\ndown_revision = None\n',
            "b.py": "revision: str = 'b'\ndown_revision: str | None = 'a'\n",
            "c.py": 'revision = "c"\ndown_revision = "a"\n',
            "m.py": 'revision = "m"\ndown_revision = ("b", "c")\n',
            "d.py": 'revision = "d"\ndown_revision = "m"\n',
            "e.py": 'revision = "e"\ndown_revision = "m"\n',
        },
    )
    assert head_revisions(versions) == {"d", "e"}


def test_a_migration_file_without_a_revision_is_named(tmp_path: Path) -> None:
    versions = write_migrations(
        tmp_path, {"a.py": 'revision = "a"\ndown_revision = None\n', "broken.py": "x = 1\n"}
    )
    with pytest.raises(ConfigError, match=r"broken\.py declares no revision"):
        head_revisions(versions)


needs_rfc3987_syntax = pytest.mark.skipif(
    importlib.util.find_spec("rfc3987_syntax") is None,
    reason="rfc3987_syntax is not installed: jsonschema builds no grammars",
)


@needs_rfc3987_syntax
def test_the_chat_path_imports_build_no_rfc3987_grammars() -> None:
    code = "import ttg_lab.llm.agent, ttg_lab.mcp_services.http, jsonschema._format"
    assert loaded_after(code, "lark", "rfc3987_syntax.syntax_helpers") == []


def test_the_chat_path_imports_neither_langsmiths_api_models_nor_langgraphs_client() -> None:
    code = "import ttg_lab.llm.agent, ttg_lab.agents.factory"
    watch = ("langsmith.types.run", "langgraph_sdk.client", "websockets")
    assert loaded_after(code, *watch) == []


def test_deferred_packages_load_whole_on_first_use() -> None:
    code = """
import sys
import ttg_lab.llm.agent
import langsmith.types as types
assert types.Run.__module__ == "langsmith.types.run"
assert sys.modules["langsmith.types"] is sys.modules["langsmith"].types
from langgraph_sdk import get_client
assert callable(get_client)
"""
    watch = ("langsmith.types.run", "langgraph_sdk.client")
    assert loaded_after(code, *watch) == list(watch)


def test_a_deferred_package_runs_its_init_once_when_first_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "slowpkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text(
        "import builtins\nbuiltins.slowpkg_inits = getattr(builtins, 'slowpkg_inits', 0) + 1\n"
        "from slowpkg.sub.leaf import VALUE\ndef double(x):\n    return 2 * x\n"
    )
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "leaf.py").write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    for name in ("slowpkg", "slowpkg.sub", "slowpkg.sub.leaf"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import builtins

    monkeypatch.setattr(builtins, "slowpkg_inits", 0, raising=False)
    sys.meta_path.insert(0, DeferredFinder([Deferral("slowpkg", calls=("double",))]))

    from slowpkg import double  # type: ignore[import-not-found]
    from slowpkg.sub.leaf import VALUE  # type: ignore[import-not-found]

    assert VALUE == 7 and builtins.slowpkg_inits == 0
    assert isinstance(sys.modules["slowpkg"], DeferredModule)
    assert double(21) == 42 and builtins.slowpkg_inits == 1
    import slowpkg  # type: ignore[import-not-found]

    assert slowpkg.VALUE == 7 and slowpkg.double(1) == 2 and builtins.slowpkg_inits == 1
    assert not isinstance(sys.modules["slowpkg"], DeferredModule)


def test_a_deferral_of_what_is_not_installed_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    sys.meta_path.insert(0, DeferredFinder([Deferral("no_such_package_b3")]))
    with pytest.raises(ModuleNotFoundError, match="no_such_package_b3"):
        importlib.import_module("no_such_package_b3")


@needs_rfc3987_syntax
def test_deferred_iri_checks_judge_as_before() -> None:
    code = """
import sys
import ttg_lab, jsonschema
checker = jsonschema.FormatChecker()
assert {"iri", "iri-reference"} <= set(checker.checkers)
schema = {"type": "string", "format": "iri"}
jsonschema.validate("https://例え.jp/パス?q=1#frag", schema, format_checker=checker)
try:
    jsonschema.validate("no spaces in an iri", schema, format_checker=checker)
except jsonschema.ValidationError:
    pass
else:
    raise AssertionError("an invalid IRI passed")
import rfc3987_syntax
assert rfc3987_syntax.is_valid_syntax_iri("http://a/b")
"""
    assert loaded_after(code, "lark") == ["lark"]  # loaded once a check needed it


async def listed(server: FastMCP | Server[Any]) -> list[dict[str, Any]]:
    """The tools a server lists, as a client reads them (FastMCP's own ``meta`` aside)."""
    if isinstance(server, FastMCP):
        async with Client(server) as client:
            tools = await client.list_tools()
    else:
        async with memory_session(server) as session:
            tools = (await session.list_tools()).tools
    return [tool.model_dump(exclude={"meta"}) for tool in tools]


async def answers(server: FastMCP | Server[Any], calls: list[tuple[str, Any]]) -> list[Any]:
    """What a client reads back for each ``(tool, arguments)`` call."""
    if isinstance(server, FastMCP):
        async with Client(server) as client:
            return [(await client.session.call_tool(n, a)).model_dump() for n, a in calls]
    async with memory_session(server) as session:
        return [(await session.call_tool(n, a)).model_dump() for n, a in calls]


def no_context() -> RunContext:
    raise AssertionError("listing tools and adding need no run context")


def test_a_runs_in_memory_tools_publish_no_output_schemas_and_answer_the_same() -> None:
    """The MCP SDK checks every answer against a tool's output schema on both ends (about
    3 ms a call); a run's own services publish none, the HTTP services keep theirs, and
    the agent reads the same answer either way."""
    for server in build_services(no_context).values():
        assert [tool["outputSchema"] for tool in asyncio.run(listed(server))] == [
            None for _ in asyncio.run(listed(server))
        ]
    published = asyncio.run(listed(build_service("trade", no_context)))
    assert None not in [tool["outputSchema"] for tool in published]
    add = [("add", {"a": 2, "b": 0.5})]
    for server in (build_services(no_context)["math"], build_service("math", no_context)):
        assert asyncio.run(answers(server, add))[0]["content"][0]["text"] == "2.5"


def test_a_cold_chat_run_never_imports_fastmcp(db_url: str) -> None:
    """A run's in-memory services are the MCP SDK's low-level servers: FastMCP (its HTTP,
    auth, event-store, telemetry and docstring-parsing imports) is for the HTTP services."""
    create_momentum(db_url)
    period = ", ".join(repr(p) for p in PERIOD)
    code = CLI_RUN.format(period=period).replace('"direct"', '"chat"')
    watch = ("fastmcp", "key_value", "beartype", "griffe")
    assert loaded_after(code, *watch, env={"TTG_LAB_DB_URL": db_url}) == []


def sandbox() -> RunContext:
    """A fresh context on the shipped daily bars of AAPL and MSFT, at 2025-07-15."""
    from ttg_lab.broker.costs import COST_PRESETS
    from ttg_lab.broker.portfolio import Portfolio
    from ttg_lab.config import resolve_settings
    from ttg_lab.market.asof import PriceIndex
    from ttg_lab.market.markets import get_market
    from ttg_lab.market.shipped import read_shipped

    frame = read_shipped("us_daily", resolve_settings().data_dir)
    index = PriceIndex(frame[frame["symbol"].isin(["AAPL", "MSFT"])], "us", "1d")
    ctx = RunContext(
        run_id=0,
        market=get_market("us"),
        index=index,
        tickers=frozenset(["AAPL", "MSFT"]),
        portfolio=Portfolio(10_000.0),
        costs=COST_PRESETS["default"],
    )
    ctx.advance(0, datetime(2025, 7, 15))
    ctx.start_step(10_000.0)
    return ctx


def test_a_runs_in_memory_services_serve_what_fastmcp_serves() -> None:
    """The agent sees the same tools (names, descriptions, input schemas) and reads the
    same answers and errors from the in-memory services as from FastMCP's: good calls, a
    trade and its refusal, look-ahead, bad, missing and extra arguments, an unknown tool."""
    from ttg_lab.mcp_services import servers

    calls: dict[str, list[tuple[str, Any]]] = {
        "math": [
            ("add", {"a": 1, "b": 2}),
            ("add", {"a": True, "b": 2}),
            ("add", {"a": "x", "b": 2}),
            ("add", {"a": 1}),
            ("add", {"a": 1, "b": 2, "c": 3}),
            ("divide", {"a": 1, "b": 0}),
            ("max_units", {"cash": 100, "price": 3}),
            ("nope", {}),
        ],
        "search": [("get_information", {"query": "Apple"}), ("get_information", {"query": ""})],
        "trade": [
            ("get_portfolio", {}),
            ("buy", {"symbol": "AAPL", "quantity": 1, "order_id": "a"}),
            ("buy", {"symbol": "AAPL", "quantity": 1e9}),
            ("sell", {"symbol": "NOPE", "quantity": 1}),
        ],
        "price": [
            ("get_price_local", {"symbol": "AAPL"}),
            ("get_price_local", {"symbol": "AAPL", "date": "2030-01-01"}),
            ("get_price_history", {"symbol": "AAPL", "bars": 3}),
            ("get_price_history", {"symbol": "AAPL", "bars": 0}),
        ],
    }
    for service, service_calls in calls.items():
        seen = []
        for fast in (True, False):  # FastMCP as runs served it before: no output schemas
            ctx = sandbox()
            server: FastMCP | Server[Any] = (
                servers.build_service(service, lambda ctx=ctx: ctx, output_schemas=False)
                if fast
                else memory.build_service(service, lambda ctx=ctx: ctx)
            )
            seen.append((asyncio.run(listed(server)), asyncio.run(answers(server, service_calls))))
        assert seen[0] == seen[1], service
