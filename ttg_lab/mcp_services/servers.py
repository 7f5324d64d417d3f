"""Build the four MCP services from the tool registry.

A service is a FastMCP server whose tools wrap the registry's plain functions. Each
tool call asks ``resolve`` for the run context it acts on: an in-memory server of a run
always gets that run's context; the HTTP servers look the session up from the request.
Deliberate errors (look-ahead, bad input) become MCP tool errors with their message, so
the agent reads why, never a traceback; so do a tool's unexpected failures and answers that
could not be sent (an overflow, a huge or non-JSON result): no tool call can end a run.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Callable
from typing import Any, get_type_hints

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.tools import Tool

from ttg_lab.engine.context import RunContext
from ttg_lab.errors import TTGLabError
from ttg_lab.mcp_services.names import SERVICES
from ttg_lab.secrets import redact
from ttg_lab.tools.answers import argument_type, error_text, tool_answer
from ttg_lab.tools.registry import ToolSpec, tools_of

SERVICE_TITLES: dict[str, str] = {
    "math": "Math",
    "search": "Search",
    "trade": "Trade",
    "price": "Price",
}

ContextResolver = Callable[[], RunContext]

logging.getLogger("fastmcp").setLevel(logging.CRITICAL)  # tool errors go to the agent, not stderr
log = logging.getLogger(__name__)


def _wrap(spec: ToolSpec, resolve: ContextResolver) -> Callable[..., Any]:
    """A function with the tool's public signature (no ``ctx``) that calls the real one."""
    fn = spec.function
    hints = get_type_hints(fn)
    params = list(inspect.signature(fn).parameters.values())
    if spec.needs_context:
        params = params[1:]

    def call(**kwargs: Any) -> Any:
        try:
            if spec.needs_context:
                ctx = resolve()
                with ctx.lock:
                    return tool_answer(spec.name, fn(ctx, **kwargs))
            return tool_answer(spec.name, fn(**kwargs))
        except TTGLabError as exc:
            raise ToolError(error_text(str(exc))) from None
        except Exception as exc:  # a tool's own failure is the agent's answer, not the run's end
            log.debug("tool %s failed\n%s", spec.name, redact(traceback.format_exc()))
            failure = redact(f"{spec.name} failed: {type(exc).__name__}: {exc}")
            raise ToolError(error_text(failure)) from None

    types = {p.name: argument_type(p.name, hints[p.name]) for p in params}
    call.__name__ = spec.name
    call.__doc__ = spec.description
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(annotation=types[p.name]) for p in params],
        return_annotation=hints.get("return", Any),
    )
    call.__annotations__ = types | {"return": hints.get("return", Any)}
    return call


def build_service(service: str, resolve: ContextResolver, output_schemas: bool = True) -> FastMCP:
    """The FastMCP server of one service, with every tool of that service. With
    ``output_schemas`` each tool publishes the JSON schema of its answer (derived from
    its return type), and the MCP SDK checks every answer against it on both ends."""
    if service not in SERVICES:
        raise TTGLabError(f"unknown service {service!r}; services are {', '.join(SERVICES)}")
    server: FastMCP = FastMCP(f"TTG Lab {SERVICE_TITLES[service]}", mask_error_details=True)
    schema: dict[str, Any] = {} if output_schemas else {"output_schema": None}
    for spec in tools_of(service):
        server.add_tool(Tool.from_function(_wrap(spec, resolve), name=spec.name, **schema))
    return server


def build_services(resolve: ContextResolver) -> dict[str, FastMCP]:
    """A run's in-memory services, all four bound to the same context resolver. They
    publish no output schemas: the agent sees only the tools' text answers (LangChain
    passes no output schema to a model), and checking each answer against a schema
    drawn from our own return types cost the SDK about 3 ms per tool call (a
    metaschema check on the server and again on the client)."""
    return {service: build_service(service, resolve, output_schemas=False) for service in SERVICES}
