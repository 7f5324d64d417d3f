"""The limits that apply to a run, from every source, and how they combine.

Sources, all expressed with the same parameters (:data:`~ttg_lab.rules.params.RULE_PARAMS`):

1. the model's structured rules (active ones, each with its scope and priority);
2. the owner's trading profile (applies to all of the user's models);
3. global ceilings set by an admin (always apply);
4. global defaults set by an admin, and the built-in defaults, which apply only to a
   parameter that no rule, profile or ceiling sets.

Every applicable limit is enforced, so **the strictest one wins**: a quantity is cut to
the smallest maximum any limit allows, and any limit can refuse. Priority (10 = highest)
orders evaluation and the list of firings; it never lets a looser limit override a
stricter one. A run records the combined set in its snapshot and enforces that copy, so
a resumed run (or a counterfactual replay) applies exactly the same limits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

BUILTIN_DEFAULTS: dict[str, Any] = {"allow_short": False}
"""Platform defaults when nothing else speaks: no short selling."""


@dataclass(frozen=True)
class Constraint:
    """One named set of limits from one source."""

    name: str
    origin: str  # model | profile | global-ceiling | global-default | builtin
    params: dict[str, Any]
    scope: dict[str, Any] = field(default_factory=dict)
    priority: int = 5
    category: str = "risk"
    rule_id: int | None = None

    def covers(self, market: str, symbol: str) -> bool:
        """Whether an order in ``symbol`` of ``market`` falls under this constraint."""
        scope = self.scope
        if scope.get("markets") and market not in scope["markets"]:
            return False
        if scope.get("symbols") and symbol not in scope["symbols"]:
            return False
        return symbol not in scope.get("exclude_symbols", ())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RuleSet:
    """The constraints of one run, ordered by priority (highest first), then name."""

    constraints: tuple[Constraint, ...] = ()

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.constraints, key=lambda c: (-c.priority, c.name)))
        object.__setattr__(self, "constraints", ordered)

    def with_param(self, key: str) -> list[Constraint]:
        return [c for c in self.constraints if key in c.params]

    def without(self, name: str) -> RuleSet:
        """The same set minus the constraint called ``name`` (for counterfactuals)."""
        return RuleSet(tuple(c for c in self.constraints if c.name != name))

    def names(self) -> list[str]:
        return [c.name for c in self.constraints]

    def to_list(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in self.constraints]

    @classmethod
    def from_list(cls, items: list[dict[str, Any]]) -> RuleSet:
        return cls(tuple(Constraint(**item) for item in items))


def combine(
    model_rules: list[Constraint],
    profile: dict[str, Any] | None,
    ceilings: dict[str, Any] | None,
    defaults: dict[str, Any] | None,
) -> RuleSet:
    """The run's constraints from all sources (see the module docstring for precedence)."""
    constraints = list(model_rules)
    if profile:
        constraints.append(Constraint("user profile", "profile", dict(profile), priority=10))
    if ceilings:
        constraints.append(
            Constraint("global ceiling", "global-ceiling", dict(ceilings), priority=10)
        )
    set_somewhere = {key for c in constraints for key in c.params}
    fallback = {**BUILTIN_DEFAULTS, **(defaults or {})}
    unset = {k: v for k, v in fallback.items() if k not in set_somewhere}
    if unset:
        origin = "global-default" if defaults else "builtin"
        constraints.append(Constraint("platform default", origin, unset, priority=1))
    return RuleSet(tuple(constraints))
