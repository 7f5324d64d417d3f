"""What every command shares on the way in: the lab, opened lazily, and typed input."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import click

from ttg_lab.dates import FORMATS

if TYPE_CHECKING:
    from ttg_lab.lab import Lab

DATE_HELP = f"{FORMATS}, exchange-local; a UTC offset such as +02:00 is converted"


class LabContext:
    """Opens the lab lazily so ``--help`` needs no database."""

    def __init__(self, db_url: str | None, user: str | None = None) -> None:
        self.db_url = db_url
        self.user = user
        self._lab: Lab | None = None

    def lab(self, init: bool = True) -> Lab:
        import ttg_lab

        if self._lab is None:
            self._lab = ttg_lab.open(self.db_url, init=init, user=self.user)
        return self._lab


pass_ctx = click.make_pass_decorator(LabContext)


class LazyChoice(click.Choice[str]):
    """A choice whose values are read when a command checks or shows them, not when the
    command line is built: most owners of choices load pandas and the store, which
    ``ttg-lab --help`` and commands that do not use them should not pay for."""

    def __init__(self, choices: Callable[[], Iterable[str]]) -> None:
        self._choices = choices
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self._choices())


class LazyHelp(click.Option):
    """An option whose help text (listing the known choices of a free-text option) is
    made when the help is shown, for the same reason as :class:`LazyChoice`."""

    def __init__(self, *args: Any, lazy_help: Callable[[], str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy_help = lazy_help

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = self._lazy_help()
        return super().get_help_record(ctx)


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """key=value pairs; a value is read as JSON (numbers, true/false, lists, objects)
    when it parses, else kept as text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--param")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params
