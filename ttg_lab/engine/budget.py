"""A run's budget: the most its LLM calls may cost (USD) and use (prompt + completion
tokens), checked before every model call.

A call is made only when the run's spend so far (every recorded call of the run, those of
committed steps and the wasted ones of lost steps alike) plus the call's worst case stays
within each cap. Otherwise :class:`BudgetExceededError` ends the step before the call; the
loop then stops the run (``stopped``, reason "budget") at its last committed step, and a
resume with a higher cap continues from there. Caps left unset take the global defaults
(settings :data:`COST_SETTING` and :data:`TOKENS_SETTING`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from ttg_lab.errors import TTGLabError, ValidationError
from ttg_lab.store.database import Store
from ttg_lab.store.schema import LLMCall

COST_SETTING = "llm.max_cost_usd"
"""Global setting: the cost cap of runs that set none."""
TOKENS_SETTING = "llm.max_tokens"
"""Global setting: the token cap of runs that set none."""


class BudgetExceededError(TTGLabError):
    """The next model call could pass the run's budget, so it was not made."""


def check_max_cost(value: object, what: str = "max_cost_usd") -> float | None:
    """A cost cap: None (no cap) or a positive number of US dollars."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValidationError(f"{what} must be a positive number of US dollars, got {value!r}")
    if not math.isfinite(value):
        raise ValidationError(f"{what} must be a finite number of US dollars, got {value!r}")
    return float(value)


def check_max_tokens(value: object, what: str = "max_tokens") -> int | None:
    """A token cap: None (no cap) or a positive whole number of tokens."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{what} must be a positive whole number of tokens, got {value!r}")
    return value


SETTING_CHECKS: dict[str, Callable[[object, str], float | int | None]] = {
    COST_SETTING: check_max_cost,
    TOKENS_SETTING: check_max_tokens,
}
"""How each budget setting is validated when it is set."""


@dataclass(frozen=True)
class Spend:
    """What a run's LLM calls cost and used (or what one call could)."""

    cost: float = 0.0
    tokens: int = 0


@dataclass(frozen=True)
class CallPrice:
    """What one call of a model can cost: USD per million prompt and completion tokens,
    and its answer budget (the most completion tokens one answer may have)."""

    input_per_mtok: float
    output_per_mtok: float
    answer_tokens: int

    def worst_case(self, prompt_tokens: int) -> Spend:
        """The most a call with ``prompt_tokens`` can cost and use."""
        cost = (
            prompt_tokens * self.input_per_mtok + self.answer_tokens * self.output_per_mtok
        ) / 1e6
        return Spend(cost, prompt_tokens + self.answer_tokens)


@dataclass(frozen=True)
class Budget:
    """A run's caps (None: no cap), validated at construction."""

    max_cost_usd: float | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_cost_usd", check_max_cost(self.max_cost_usd))
        object.__setattr__(self, "max_tokens", check_max_tokens(self.max_tokens))

    @property
    def capped(self) -> bool:
        return self.max_cost_usd is not None or self.max_tokens is not None

    def over(self, defaults: Budget) -> Budget:
        """These caps, each unset one taken from ``defaults``."""
        return Budget(
            self.max_cost_usd if self.max_cost_usd is not None else defaults.max_cost_usd,
            self.max_tokens if self.max_tokens is not None else defaults.max_tokens,
        )

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Budget:
        """The global defaults held in ``settings`` (by key)."""
        return cls(settings.get(COST_SETTING), settings.get(TOKENS_SETTING))

    def to_json(self) -> dict[str, Any]:
        return {"max_cost_usd": self.max_cost_usd, "max_tokens": self.max_tokens}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Budget:
        data = data or {}
        return cls(data.get("max_cost_usd"), data.get("max_tokens"))

    def check(self, spent: Spend, call: Spend) -> None:
        """Refuse a call whose worst case ``call`` would take ``spent`` past a cap."""
        cap_cost, cap_tokens = self.max_cost_usd, self.max_tokens
        if cap_cost is not None and spent.cost + call.cost > cap_cost:
            raise BudgetExceededError(
                f"budget: the next LLM call could cost up to ${call.cost:.6f}, taking the "
                f"run's spend of ${spent.cost:.6f} past its cap max_cost_usd=${cap_cost:g}; "
                "resume with a higher max_cost_usd to go on"
            )
        if cap_tokens is not None and spent.tokens + call.tokens > cap_tokens:
            raise BudgetExceededError(
                f"budget: the next LLM call could use up to {call.tokens} tokens, taking the "
                f"run's {spent.tokens} tokens past its cap max_tokens={cap_tokens}; "
                "resume with a higher max_tokens to go on"
            )


def run_spend(store: Store, run_id: int) -> Spend:
    """Everything run ``run_id``'s recorded LLM calls cost and used, wasted ones included."""
    with store.session() as session:
        cost, tokens = session.execute(
            select(
                func.coalesce(func.sum(LLMCall.cost), 0.0),
                func.coalesce(func.sum(LLMCall.prompt_tokens + LLMCall.completion_tokens), 0),
            ).where(LLMCall.run_id == run_id)
        ).one()
    return Spend(float(cost), int(tokens))
