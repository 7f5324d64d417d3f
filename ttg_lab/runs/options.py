"""How a run is run, apart from its model, mode and period: declared once, checked once.

:meth:`ttg_lab.lab.Lab.start_run` takes these as keyword arguments and builds a
:class:`RunOptions`, so a bad value is refused (naming it) before anything is written;
the CLI, widgets and batches pass the same names. Later options (repeats, budgets,
masking, forward runs) are added here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any, cast
from urllib.parse import urlsplit

from ttg_lab.agents.factory import AGENT_PATHS
from ttg_lab.broker.costs import CostModel, resolve_cost_model
from ttg_lab.broker.fills import check_fill_policy
from ttg_lab.engine.budget import Budget
from ttg_lab.engine.snapshot import MissedBars
from ttg_lab.errors import ValidationError
from ttg_lab.text import refuse_secrets


@dataclass(frozen=True)
class RunOptions:
    """A run's options, validated at construction.

    ``costs``: a preset name (``default``, ``zero``, ``ibkr-fixed``), a dict of
    :class:`~ttg_lab.broker.costs.CostModel` fields or a CostModel (``default`` when None);
    ``fill``: ``open`` (the decision bar's open) or ``close`` (market-on-close);
    ``seed``: the run's random seed; ``path``: ``chat`` (a chat model calling the MCP
    tools) or ``direct`` (a policy calling the tools directly); ``provenance``: an
    experiment's parameters and tags, kept in the run's snapshot; ``replay_from``: the
    recorded run whose LLM answers this one replays (chat path only); ``max_cost_usd`` and
    ``max_tokens``: the run's LLM budget (see :mod:`ttg_lab.engine.budget`; unset caps
    take the global defaults ``llm.max_cost_usd`` and ``llm.max_tokens``); ``masked``:
    what the model sees is masked (pseudonyms, scaled prices, shifted dates; see
    :mod:`ttg_lab.market.masking`), chat path only.

    Forward runs (``forward=True``: trade bar by bar as the provider releases them, from
    the first bar starting after the run is created): ``until`` the last day to trade
    (a date or ``YYYY-MM-DD``; None: until stopped), ``provider`` the data provider polled
    (``alphavantage``, ``ccxt:binance`` ...), ``provider_url`` its base URL (a mirror or a
    test server; None: the provider's own), ``missed`` what resume does with the bars that
    came while the run was down: ``decide`` each as of its own time, or ``skip`` (recorded
    without a decision).
    """

    costs: CostModel | str | dict[str, Any] | None = None
    fill: str = "open"
    seed: int = 0
    path: str = "chat"
    provenance: dict[str, Any] = field(default_factory=dict)
    replay_from: int | None = None
    max_cost_usd: float | None = None
    max_tokens: int | None = None
    forward: bool = False
    until: date | str | None = None
    provider: str | None = None
    provider_url: str | None = None
    missed: str = "decide"
    masked: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "costs", resolve_cost_model(self.costs))
        budget = self.budget  # validated here, so a bad cap is refused before anything runs
        object.__setattr__(self, "max_cost_usd", budget.max_cost_usd)
        check_fill_policy(self.fill)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValidationError(f"seed must be a whole number, got {self.seed!r}")
        if self.path not in AGENT_PATHS:
            raise ValidationError(
                f"agent path must be one of {', '.join(AGENT_PATHS)}, got {self.path!r}"
            )
        if self.provenance is None:
            object.__setattr__(self, "provenance", {})
        if not isinstance(self.provenance, dict):
            raise ValidationError(f"provenance must be a dict, got {self.provenance!r}")
        refuse_secrets({"provenance": self.provenance}, "run")
        replay = self.replay_from
        if replay is not None and (isinstance(replay, bool) or not isinstance(replay, int)):
            raise ValidationError(f"replay_from must be a run id, got {replay!r}")
        if replay is not None and self.path != "chat":
            raise ValidationError("replay needs the chat path: the direct path makes no LLM calls")
        if not isinstance(self.masked, bool):
            raise ValidationError(f"masked must be True or False, got {self.masked!r}")
        if self.masked and self.path != "chat":
            raise ValidationError(
                f"a masked run needs the chat path, got path={self.path!r}: nothing of the "
                "direct path reaches a model, so there is nothing to mask"
            )
        self._check_forward()

    def _check_forward(self) -> None:
        """A forward run's options, refused (naming the value) when they cannot hold."""
        if not isinstance(self.forward, bool):
            raise ValidationError(f"forward must be True or False, got {self.forward!r}")
        object.__setattr__(self, "until", _day(self.until))
        if self.missed not in MISSED:
            raise ValidationError(f"missed must be one of {', '.join(MISSED)}, got {self.missed!r}")
        if self.provider is not None and (not isinstance(self.provider, str) or not self.provider):
            raise ValidationError(f"provider must be a provider's name, got {self.provider!r}")
        if self.provider_url is not None:
            _check_url(self.provider_url)
        if not self.forward:
            given = [
                name
                for name, value, unset in (
                    ("until", self.until, None),
                    ("provider", self.provider, None),
                    ("provider_url", self.provider_url, None),
                    ("missed", self.missed, "decide"),
                )
                if value != unset
            ]
            if given:
                raise ValidationError(
                    f"{', '.join(given)} belong(s) to forward runs; pass forward=True"
                )
            return
        if self.fill != "open":
            raise ValidationError(
                f"a forward run fills at the open (fill='open'), got fill={self.fill!r}: "
                "the close is not known when the step decides"
            )
        if self.replay_from is not None:
            raise ValidationError("a forward run cannot replay a recorded run: its bars are new")

    @property
    def missed_bars(self) -> MissedBars:
        """``missed``, checked."""
        return cast(MissedBars, self.missed)

    @property
    def until_day(self) -> date | None:
        """``until``, parsed."""
        assert self.until is None or isinstance(self.until, date)  # __post_init__ parsed it
        return self.until

    @property
    def budget(self) -> Budget:
        """The caps this run was given (before the global defaults fill the unset ones)."""
        return Budget(self.max_cost_usd, self.max_tokens)

    @property
    def cost_model(self) -> CostModel:
        """The resolved cost model."""
        assert isinstance(self.costs, CostModel)  # __post_init__ resolved it
        return self.costs

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> RunOptions:
        """Options from keyword arguments; an unknown name is refused with the known ones."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValidationError(
                f"unknown run option(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        return cls(**options)


MISSED: tuple[str, ...] = ("decide", "skip")


def _day(value: object) -> date | None:
    """``until`` as a day: a date (a datetime's day) or ``YYYY-MM-DD``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValidationError(f"until must be a day (YYYY-MM-DD), got {value!r}")


def _check_url(url: object) -> None:
    """A provider's base URL: http(s), with no query (keys come from the environment)."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(f"provider_url must be an http(s) URL, got {url!r}")
    if parts.query or parts.username or parts.password:
        raise ValidationError(
            "provider_url must be a base URL without query or credentials "
            f"({parts.scheme}://{parts.hostname}{parts.path}...): keys come from the environment"
        )
