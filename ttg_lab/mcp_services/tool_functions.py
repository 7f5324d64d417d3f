"""The functions MCP services serve: the tool registry's plain functions, bound to a context.

Each tool call asks ``resolve`` for the run context it acts on: a run's in-memory server
always gets that run's context; the HTTP servers look the session up from the request.
Deliberate errors (look-ahead, bad input) become tool errors with their message, so the
agent reads why, never a traceback; so do a tool's unexpected failures and answers that
could not be sent (an overflow, a huge or non-JSON result): no tool call can end a run.
Both kinds of server (FastMCP for HTTP, the SDK's low-level one in memory) serve these.

A masked run's tools are translated here, the one boundary every server goes through:
the arguments in (symbol, date, quantity, search query) from masked terms to real ones,
the answer and every error text out from real terms to masked ones (see
:mod:`ttg_lab.market.masking`); the tools themselves only ever see real data.
"""

from __future__ import annotations

import inspect
import logging
import math
import traceback
from collections.abc import Callable
from typing import Any, get_type_hints

from ttg_lab.dates import parse_date
from ttg_lab.engine.context import RunContext
from ttg_lab.errors import TTGLabError
from ttg_lab.market.markets import Market
from ttg_lab.market.masking import Mask
from ttg_lab.rules.gate import parse_quantity
from ttg_lab.secrets import redact
from ttg_lab.tools.answers import argument_type, error_text, tool_answer
from ttg_lab.tools.registry import ToolSpec

ContextResolver = Callable[[], RunContext]

log = logging.getLogger(__name__)


def _as_is(text: str) -> str:
    return text


def tool_function(
    spec: ToolSpec, resolve: ContextResolver, failure: Callable[[str], Exception]
) -> Callable[..., Any]:
    """A function with the tool's public signature (no ``ctx``) that calls the real one and
    raises ``failure(text)`` with the text the agent reads when the call fails."""
    fn = spec.function
    hints = get_type_hints(fn)
    params = list(inspect.signature(fn).parameters.values())
    if spec.needs_context:
        params = params[1:]

    def call(**kwargs: Any) -> Any:
        shown: Callable[[str], str] = _as_is  # how an error in real terms reaches the agent
        try:
            if not spec.needs_context:
                return tool_answer(spec.name, fn(**kwargs))
            ctx = resolve()
            with ctx.lock:
                mask = ctx.mask
                if mask is None:
                    return tool_answer(spec.name, fn(ctx, **kwargs))
                real = real_arguments(mask, ctx.market, kwargs)  # refusals in masked terms
                shown = mask.text
                return mask.answer(tool_answer(spec.name, fn(ctx, **real)))
        except TTGLabError as exc:
            raise failure(error_text(shown(str(exc)))) from None
        except Exception as exc:  # a tool's own failure is the agent's answer, not the run's end
            log.debug("tool %s failed\n%s", spec.name, redact(traceback.format_exc()))
            text = redact(f"{spec.name} failed: {type(exc).__name__}: {exc}")
            raise failure(error_text(shown(text))) from None

    types = {p.name: argument_type(p.name, hints[p.name]) for p in params}
    call.__name__ = spec.name
    call.__doc__ = spec.description
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(annotation=types[p.name]) for p in params],
        return_annotation=hints.get("return", Any),
    )
    call.__annotations__ = types | {"return": hints.get("return", Any)}
    return call


def real_arguments(mask: Mask, market: Market, arguments: dict[str, Any]) -> dict[str, Any]:
    """A masked run's tool arguments in real terms: the symbol (an unknown one is refused,
    naming it as given), the date, a quantity of the symbol and a search query. What is
    not a value of its kind passes as given, for the tool to refuse."""
    real = dict(arguments)
    if "symbol" in real:
        real["symbol"] = mask.real_symbol(real["symbol"])
    if isinstance(real.get("date"), str):
        real["date"] = mask.real_when(parse_date(real["date"], "date", market.timezone))
    quantity = parse_quantity(real.get("quantity"))
    if "symbol" in real and quantity is not None and math.isfinite(quantity):
        # the gate judges the real quantity: its refusal ("whole units only ..., got 9.2
        # AAPL") reads in masked terms once translated
        real["quantity"] = mask.real_quantity(real["symbol"], quantity)
    if isinstance(real.get("query"), str):
        real["query"] = mask.real_text(real["query"])
    return real
