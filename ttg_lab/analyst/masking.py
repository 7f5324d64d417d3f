"""The analyst of a masked run speaks in masked terms.

Its tools read the stored run, which is real; what they answer goes out through the run's
:class:`~ttg_lab.market.masking.Mask` (symbols to pseudonyms, prices x k, quantities / k,
dates shifted, tickers and names in text replaced), and what the analyst passes them
(a symbol, a date, a rule's blocked symbols) comes back in to real terms. Ids are not
masked, so citations resolve to the real rows. The agent's reasoning entries are stored as
its model read and wrote them (already masked) and are passed on unchanged: masking them
again would shift their dates twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ttg_lab.market.masking import Mask

STORED_MASKED_KEYS = frozenset({"content"})
"""Answer keys holding text stored as the run's model saw it (reasoning entries)."""

PRICE_KEYS = frozenset({"entry_price", "exit_price"})
"""The analysis tools' price keys beyond the mask's own (a round trip's prices)."""

SYMBOL_MAPS = frozenset({"pnl_by_symbol", "pnl_difference_by_symbol", "open_positions_at_end"})
"""Answer keys whose value maps a symbol to a number (money, or a quantity below)."""

QUANTITY_MAPS = frozenset({"open_positions_at_end"})
"""Of :data:`SYMBOL_MAPS`, those whose numbers are quantities (scaled like any quantity)."""

SYMBOL_ARGUMENTS: dict[str, frozenset[str]] = {"analyze_trades": frozenset({"symbol"})}
"""Tool arguments naming a symbol to read by (translated to the real symbol). The reasoning
search's ``symbol`` is not one: it searches the stored, masked text."""

DATE_ARGUMENTS = frozenset({"start", "end", "date"})
"""Tool arguments holding a date (shifted back)."""


def masked_answer(mask: Mask, value: Any, sym: str | None = None) -> Any:
    """A tool's answer as the analyst of a masked run sees it."""
    if isinstance(value, Mapping):
        own = value.get("symbol")
        sym = own if isinstance(own, str) and own in mask.pseudonyms else sym
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in STORED_MASKED_KEYS:
                out[key] = item
            elif key in SYMBOL_MAPS and isinstance(item, Mapping):
                out[key] = {
                    _symbol(mask, s): mask.quantity(s, v) if _scaled(mask, key, s, v) else v
                    for s, v in item.items()
                }
            elif key in PRICE_KEYS and sym is not None and isinstance(item, int | float):
                out[key] = mask.price(sym, float(item))
            elif isinstance(item, Mapping | list | tuple):
                out[key] = masked_answer(mask, item, sym)
            else:
                out[key] = mask.answer({key: item}, sym)[key]
        return out
    if isinstance(value, list | tuple):
        return [masked_answer(mask, item, sym) for item in value]
    return mask.answer(value, sym)


def real_arguments(mask: Mask, tool: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A tool's arguments, given in masked terms, in the real terms the tools read by
    (an unknown pseudonym is refused in masked terms)."""
    real: dict[str, Any] = {}
    for key, item in arguments.items():
        if key in SYMBOL_ARGUMENTS.get(tool, ()) and isinstance(item, str) and item:
            real[key] = mask.real_symbol(item)
        elif key in DATE_ARGUMENTS and isinstance(item, str):
            real[key] = mask.real_text(item)
        elif tool == "evaluate_rule" and key != "category":
            real[key] = _real_texts(mask, item)
        else:
            real[key] = item
    return real


def _real_texts(mask: Mask, value: Any) -> Any:
    """Every text in ``value`` back to real terms (a proposed rule: its name, rationale and
    parameters such as blocked symbols)."""
    if isinstance(value, str):
        return mask.real_text(value)
    if isinstance(value, Mapping):
        return {key: _real_texts(mask, item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_real_texts(mask, item) for item in value]
    return value


def _symbol(mask: Mask, symbol: str) -> str:
    return mask.symbol(symbol) if symbol in mask.pseudonyms else mask.text(symbol)


def _scaled(mask: Mask, key: str, symbol: str, value: Any) -> bool:
    return key in QUANTITY_MAPS and symbol in mask.pseudonyms and isinstance(value, int | float)
