"""The four MCP services and the path they answer on, named once (a module light enough
for the command line)."""

SERVICES: tuple[str, ...] = ("math", "search", "trade", "price")
"""The four MCP services, as AI-Trader splits them."""

SERVICE_TITLES: dict[str, str] = {
    "math": "Math",
    "search": "Search",
    "trade": "Trade",
    "price": "Price",
}
"""Each service's name as its server tells clients."""

MCP_PATH = "/mcp"
"""Where each service answers MCP requests over HTTP."""
