"""Declared agent parameters and their validation (one place for every agent)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ttg_lab.errors import ValidationError


@dataclass(frozen=True)
class Param:
    """One tunable parameter: type, default and allowed range."""

    kind: type
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ""
    choices: tuple[str, ...] = ()
    pattern: str = ""

    def check(self, name: str, value: Any) -> Any:
        if value is None and self.default is None:
            return None  # "use the provider's default"
        if self.kind is str:
            return self._check_text(name, value)
        if self.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ValidationError(f"parameter {name} must be a whole number, got {value!r}")
        if self.kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError(f"parameter {name} must be a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ValidationError(f"parameter {name} must be finite, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ValidationError(f"parameter {name} must be >= {self.minimum:g}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise ValidationError(f"parameter {name} must be <= {self.maximum:g}, got {value!r}")
        return value

    def _check_text(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError(f"parameter {name} must be text, got {value!r}")
        if self.choices and value not in self.choices:
            raise ValidationError(
                f"parameter {name} must be one of {', '.join(self.choices)}, got {value!r}"
            )
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise ValidationError(f"parameter {name} has an invalid value {value!r}")
        return value


ParamSpec = dict[str, Param]


def validate_parameters(
    spec: ParamSpec, given: dict[str, Any] | None, owner: str
) -> dict[str, Any]:
    """Defaults merged with ``given``; unknown names or bad values are a clear error."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(spec))
    if unknown:
        known = ", ".join(sorted(spec)) or "none"
        raise ValidationError(
            f"unknown parameter(s) for {owner}: {', '.join(unknown)}; known: {known}"
        )
    return {
        name: p.check(name, given[name]) if name in given else p.default for name, p in spec.items()
    }
