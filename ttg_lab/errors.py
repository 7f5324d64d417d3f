"""Structured exceptions: each says what went wrong and where.

Every error the workbench raises on purpose derives from :class:`TTGLabError`, so
callers (CLI, widgets, agents' tool answers) can show its message instead of a traceback.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ttg_lab.secrets import redact


class TTGLabError(Exception):
    """Base class of all deliberate TTG Lab errors. A message never shows a secret: what
    it quotes of the input (a typed key, a provider's echo) is redacted as it is made."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(arg) if isinstance(arg, str) else arg for arg in args))


class ConfigError(TTGLabError):
    """A setting (environment variable, option, config value) is invalid."""


class ValidationError(TTGLabError):
    """User or agent input is invalid; nothing was changed."""


class PermissionDeniedError(TTGLabError):
    """The lab's user may not do this (not an admin, not approved, not the owner)."""


class NotFoundError(TTGLabError):
    """A named object (model, run, symbol, dataset) does not exist."""


class DataFileError(TTGLabError):
    """A market-data or run file is malformed. Names the file and, where known, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.reason = message
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class LookAheadError(TTGLabError):
    """A read asked for data that is not yet known at the run's simulated clock."""

    def __init__(self, symbol: str, asked: datetime | str, clock: datetime, what: str = "") -> None:
        self.symbol = symbol
        self.asked = asked
        self.clock = clock
        detail = f" {what}" if what else ""
        super().__init__(
            f"look-ahead refused: {symbol}{detail} at {asked} is not known yet "
            f"(simulated clock is {clock:%Y-%m-%d %H:%M})"
        )


class RunStateError(TTGLabError):
    """An operation does not fit the run's current state (e.g. resuming a completed run)."""


class ModelServerError(TTGLabError):
    """A local model server could not start (busy port, one already running, it died
    before it answered) or cannot be reached."""


def shown(value: object, limit: int = 80) -> str:
    """``value`` as an error message shows it: its repr, a huge one cut short, so no
    message (to a user, an agent or the ledger) grows with what was sent."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


class FetchError(TTGLabError):
    """A data provider's answer could not be used: names the provider, the symbol and
    why (``kind`` says what kind of failure, for the caller to decide: wait, stop, skip).

    ``kind`` is one of ``rate_limit`` (wait ``retry_after`` seconds and ask again),
    ``quota`` (the day's requests are used up: stop until the provider's reset),
    ``premium`` (the request needs a paid plan), ``unknown_symbol``, ``auth`` (key missing
    or refused), ``bad_response`` (error JSON, an HTML page, a truncated or empty body,
    bars that fail the checks) or ``network``. The message never holds an API key.
    """

    KINDS = ("rate_limit", "quota", "premium", "unknown_symbol", "auth", "bad_response", "network")

    def __init__(
        self,
        provider: str,
        symbol: str | None,
        reason: str,
        kind: str = "bad_response",
        retry_after: float | None = None,
    ) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown fetch error kind {kind!r}")
        self.provider = provider
        self.symbol = symbol
        self.reason = reason
        self.kind = kind
        self.retry_after = retry_after
        who = f"{provider} {symbol}" if symbol else provider
        super().__init__(f"{who}: {reason}")
