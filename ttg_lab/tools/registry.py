"""Every agent tool, defined once: name, service, function and description.

The functions are plain Python over a :class:`~ttg_lab.engine.context.RunContext`
(first argument ``ctx``) or over their arguments alone (math). The MCP servers serve
them; offline agents may call them directly. Adding a tool here adds it everywhere
(``TOOLS.register`` refuses a second tool under a taken name).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ttg_lab.registry import Registry
from ttg_lab.tools import account, arithmetic, price, search, trade


@dataclass(frozen=True)
class ToolSpec:
    """One tool: where it is served and what it does."""

    name: str
    service: str
    function: Callable[..., Any]
    needs_context: bool

    @property
    def description(self) -> str:
        return (self.function.__doc__ or self.name).strip()


TOOLS: Registry[ToolSpec] = Registry("tool")
"""Every tool, by name, in the order the services list them."""

for _spec in (
    ToolSpec("add", "math", arithmetic.add, False),
    ToolSpec("subtract", "math", arithmetic.subtract, False),
    ToolSpec("multiply", "math", arithmetic.multiply, False),
    ToolSpec("divide", "math", arithmetic.divide, False),
    ToolSpec("max_units", "math", arithmetic.max_units, False),
    ToolSpec("get_price_local", "price", price.get_price_local, True),
    ToolSpec("get_price_history", "price", price.get_price_history, True),
    ToolSpec("get_information", "search", search.get_information, True),
    ToolSpec("buy", "trade", trade.buy, True),
    ToolSpec("sell", "trade", trade.sell, True),
    ToolSpec("short", "trade", trade.short, True),
    ToolSpec("cover", "trade", trade.cover, True),
    ToolSpec("get_portfolio", "trade", account.get_portfolio, True),
):
    TOOLS.register(_spec.name, _spec)

TRADE_TOOLS: frozenset[str] = frozenset({"buy", "sell", "short", "cover"})


def tools_of(service: str) -> list[ToolSpec]:
    """The tools one service serves."""
    return [t for _, t in TOOLS.items() if t.service == service]
