"""A run's own MCP services, in memory: the MCP SDK's low-level server over the tool functions.

A run talks to its four services inside its own process. FastMCP's server would bring
its HTTP, auth, event-store and telemetry imports (about 0.6 s of a cold chat run) for
none of which a run has a use, so the run serves the same tool functions with the SDK's
lower layer and gives the agent exactly what FastMCP gives it (a test compares the two
call by call): the same tool list (input schemas drawn by pydantic from the signatures,
titles pruned), the same answers (text; a dict also as structured content) and the same
error texts (bad arguments, a tool's own errors, an unknown tool). Like a run's FastMCP
services before, they publish no output schemas: nothing checks answers against a schema
drawn from our own return types (about 3 ms a call, on both ends).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pydantic_core
from mcp import types
from mcp.client.session import ClientSession
from mcp.server.lowlevel import Server
from mcp.shared.memory import create_connected_server_and_client_session
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from ttg_lab.engine.context import RunContext
from ttg_lab.mcp_services.names import SERVICE_TITLES, SERVICES
from ttg_lab.mcp_services.tool_functions import ContextResolver, tool_function
from ttg_lab.tools.registry import ToolSpec, tools_of


class ToolFailure(Exception):
    """A tool call that failed, with the text the agent reads."""


@dataclass(frozen=True)
class MemoryTool:
    """One served tool: how it is listed, and its function behind argument validation."""

    listing: types.Tool
    validated_call: Callable[[dict[str, Any]], Any]


def _without_titles(schema: Any) -> Any:
    """``schema`` without pydantic's ``title`` keywords (a property named "title" stays)."""
    if isinstance(schema, list):
        return [_without_titles(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: (
            {name: _without_titles(sub) for name, sub in value.items()}
            if key == "properties"
            else _without_titles(value)
        )
        for key, value in schema.items()
        if key != "title"
    }


def _tool(spec: ToolSpec, resolve: ContextResolver) -> MemoryTool:
    call = tool_function(spec, resolve, ToolFailure)
    adapter: TypeAdapter[Any] = TypeAdapter(call)  # type: ignore[arg-type]  # a function
    listing = types.Tool(
        name=spec.name,
        description=inspect.getdoc(call),
        inputSchema=_without_titles(adapter.json_schema()),
    )
    return MemoryTool(listing, adapter.validate_python)


def _text(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], isError=True
    )


def _answer(value: Any) -> types.CallToolResult:
    """A tool's answer as FastMCP sends it: nothing for None or an empty list, a string as
    it is, anything else as compact JSON; a dict also as structured content."""
    content: list[types.ContentBlock] = []
    if isinstance(value, str):
        content = [types.TextContent(type="text", text=value)]
    elif value is not None and value != []:
        text = pydantic_core.to_json(value, fallback=str).decode()
        content = [types.TextContent(type="text", text=text)]
    structured = value if isinstance(value, dict) else None
    return types.CallToolResult(content=content, structuredContent=structured)


def build_service(service: str, resolve: ContextResolver) -> Server[Any]:
    """The in-memory server of one service, with every tool of that service."""
    tools = {spec.name: _tool(spec, resolve) for spec in tools_of(service)}
    server: Server[Any] = Server(f"TTG Lab {SERVICE_TITLES[service]}")

    @server.list_tools()  # type: ignore[no-untyped-call,untyped-decorator]
    async def list_tools() -> list[types.Tool]:
        return [tool.listing for tool in tools.values()]

    @server.call_tool(validate_input=False)  # type: ignore[untyped-decorator]
    async def call_tool(name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        tool = tools.get(name)
        if tool is None:
            return _text(f"Unknown tool: {name!r}")
        try:
            return _answer(tool.validated_call(arguments or {}))
        except (ToolFailure, PydanticValidationError) as exc:
            return _text(str(exc))

    return server


def tool_schemas_for(ctx: RunContext) -> list[dict[str, Any]]:
    """Every tool a run's agent is offered, as OpenAI function schemas (the size of a
    prompt is known before a run: :mod:`ttg_lab.runs.estimate`)."""
    specs = [spec for service in SERVICES for spec in tools_of(service)]
    listings = [_tool(spec, lambda: ctx).listing for spec in specs]
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.inputSchema},
        }
        for t in listings
    ]


def build_services(resolve: ContextResolver) -> dict[str, Server[Any]]:
    """A run's in-memory services, all four bound to the same context resolver."""
    return {service: build_service(service, resolve) for service in SERVICES}


@asynccontextmanager
async def memory_session(server: Server[Any]) -> AsyncIterator[ClientSession]:
    """An initialised client session to ``server``, served in the same event loop. The
    connection lives in a task of its own, so whichever task closes the session (a run
    ends in another task than it began) leaves the SDK's task group where it entered."""
    ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
    done = asyncio.Event()

    async def serve() -> None:
        try:
            async with create_connected_server_and_client_session(server) as session:
                ready.set_result(session)
                await done.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    task = asyncio.create_task(serve())
    try:
        yield await ready
    finally:
        done.set()
        await task
