"""The functions MCP services serve: the tool registry's plain functions, bound to a context.

Each tool call asks ``resolve`` for the run context it acts on: a run's in-memory server
always gets that run's context; the HTTP servers look the session up from the request.
Deliberate errors (look-ahead, bad input) become tool errors with their message, so the
agent reads why, never a traceback; so do a tool's unexpected failures and answers that
could not be sent (an overflow, a huge or non-JSON result): no tool call can end a run.
Both kinds of server (FastMCP for HTTP, the SDK's low-level one in memory) serve these.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Callable
from typing import Any, get_type_hints

from ttg_lab.engine.context import RunContext
from ttg_lab.errors import TTGLabError
from ttg_lab.secrets import redact
from ttg_lab.tools.answers import argument_type, error_text, tool_answer
from ttg_lab.tools.registry import ToolSpec

ContextResolver = Callable[[], RunContext]

log = logging.getLogger(__name__)


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
        try:
            if spec.needs_context:
                ctx = resolve()
                with ctx.lock:
                    return tool_answer(spec.name, fn(ctx, **kwargs))
            return tool_answer(spec.name, fn(**kwargs))
        except TTGLabError as exc:
            raise failure(error_text(str(exc))) from None
        except Exception as exc:  # a tool's own failure is the agent's answer, not the run's end
            log.debug("tool %s failed\n%s", spec.name, redact(traceback.format_exc()))
            text = redact(f"{spec.name} failed: {type(exc).__name__}: {exc}")
            raise failure(error_text(text)) from None

    types = {p.name: argument_type(p.name, hints[p.name]) for p in params}
    call.__name__ = spec.name
    call.__doc__ = spec.description
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(annotation=types[p.name]) for p in params],
        return_annotation=hints.get("return", Any),
    )
    call.__annotations__ = types | {"return": hints.get("return", Any)}
    return call
