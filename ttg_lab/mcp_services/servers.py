"""The four MCP services as FastMCP servers (the HTTP services; a run's own in-memory
services are :mod:`ttg_lab.mcp_services.memory`), over the tool functions of
:mod:`ttg_lab.mcp_services.tool_functions`."""

from __future__ import annotations

import logging
from typing import Any

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.tools import Tool

from ttg_lab.errors import TTGLabError
from ttg_lab.mcp_services.names import SERVICE_TITLES, SERVICES
from ttg_lab.mcp_services.tool_functions import ContextResolver, tool_function
from ttg_lab.tools.registry import tools_of

logging.getLogger("fastmcp").setLevel(logging.CRITICAL)  # tool errors go to the agent, not stderr


def build_service(service: str, resolve: ContextResolver, output_schemas: bool = True) -> FastMCP:
    """The FastMCP server of one service, with every tool of that service. With
    ``output_schemas`` each tool publishes the JSON schema of its answer (derived from
    its return type), and the MCP SDK checks every answer against it on both ends."""
    if service not in SERVICES:
        raise TTGLabError(f"unknown service {service!r}; services are {', '.join(SERVICES)}")
    server: FastMCP = FastMCP(f"TTG Lab {SERVICE_TITLES[service]}", mask_error_details=True)
    schema: dict[str, Any] = {} if output_schemas else {"output_schema": None}
    for spec in tools_of(service):
        call = tool_function(spec, resolve, ToolError)
        server.add_tool(Tool.from_function(call, name=spec.name, **schema))
    return server
