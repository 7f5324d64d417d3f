"""What a tool takes and gives, checked in one place for every tool on every path.

A tool's answer goes to a model (over MCP or directly) and into the store's JSON columns,
so it must be JSON with finite numbers and of a sane size; a number argument must be a
number, never a bool (JSON ``true`` is not 1). A result that breaks these rules becomes
an error the agent reads, never an exception that ends its run.
"""

from __future__ import annotations

import json
import math
import numbers
import types
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Union, get_args, get_origin

import numpy as np
from pydantic import BeforeValidator

from ttg_lab.errors import ValidationError, shown
from ttg_lab.jsonsafe import json_safe

MAX_ANSWER_CHARS = 300_000
"""Largest answer (as JSON text) a tool may give: 1,000 bars of history fit easily."""

MAX_ERROR_CHARS = 2_000
"""Longest error message a tool sends back."""

MAX_QUERY_CHARS = 1_000
"""Longest search query a tool takes."""


def number(name: str, value: object) -> float:
    """``value`` as a finite float, or a ValidationError naming ``name`` (never a bool)."""
    if isinstance(value, bool | np.bool_):
        raise ValidationError(f"{name} must be a number, not a bool ({value!r})")
    if not isinstance(value, numbers.Real | Decimal):
        raise ValidationError(f"{name} must be a number, got {shown(value)}")
    result = float(value)
    if not math.isfinite(result):
        raise ValidationError(f"{name} must be a finite number, got {shown(value)}")
    return result


def finite_result(name: str, value: float) -> float:
    """A math tool's result, or a ValidationError when it overflowed or is undefined."""
    if not math.isfinite(value):
        raise ValidationError(
            f"{name} gives no finite number for these inputs (the result is {value}): "
            "use smaller numbers"
        )
    return value


def _refuse_bool(name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"{name} must be a number, not a bool ({value!r})")
        return value

    return check


def _is_number_type(hint: Any) -> bool:
    if hint in (int, float):
        return True
    if get_origin(hint) in (Union, types.UnionType):
        return any(arg in (int, float) for arg in get_args(hint))
    return False


def argument_type(name: str, hint: Any) -> Any:
    """The type a tool's argument is validated with: ``hint``, refusing a bool where a
    number is expected (pydantic's lax mode would read ``true`` as 1). The JSON schema the
    model sees is unchanged."""
    if _is_number_type(hint):
        return Annotated[hint, BeforeValidator(_refuse_bool(name))]
    return hint


def tool_answer(name: str, value: Any) -> Any:
    """A tool's result as it may be sent: a finite number, or JSON of a sane size."""
    if isinstance(value, float):
        return finite_result(name, value)
    safe = json_safe(value)
    size = len(json.dumps(safe))
    if size > MAX_ANSWER_CHARS:
        raise ValidationError(
            f"{name} would answer {size:,} characters (at most {MAX_ANSWER_CHARS:,}): ask for less"
        )
    return safe


def error_text(message: str) -> str:
    """An error message as a tool sends it back: cut to :data:`MAX_ERROR_CHARS`."""
    return message if len(message) <= MAX_ERROR_CHARS else message[:MAX_ERROR_CHARS] + "…"
