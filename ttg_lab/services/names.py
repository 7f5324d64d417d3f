"""The four MCP services, named once (a module light enough for the command line)."""

SERVICES: tuple[str, ...] = ("math", "search", "trade", "price")
"""The four MCP services, as AI-Trader splits them."""
