"""What every command shares on the way in: the lab, opened lazily, and typed input."""

from __future__ import annotations

import json
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
