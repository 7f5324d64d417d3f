"""Plain JSON data from anything an agent sends or a tool returns.

Answers and records go to models (over MCP or directly) and into the store's JSON
columns, so they must be plain JSON: numpy scalars as Python numbers, times as ISO text,
no NaN, and what an agent sent repeated short.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars as Python numbers, times as ISO text,
    non-finite floats as null (JSON has no NaN), anything else as its text."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, numbers.Real | Decimal):  # Fraction, Decimal
        return json_safe(float(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)


def echo(value: Any) -> Any:
    """What an agent sent, as an answer or a record repeats it: JSON-safe and short."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value if math.isfinite(value) else str(value)
    return str(value)[:100]
