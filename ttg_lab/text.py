"""Checks for names and text that users and files give and the store keeps.

One place, so every entry point refuses the same things the same way: PostgreSQL
refuses a NUL character outright (SQLite would store it), control characters make a
name unreadable and unmatchable on screen, and an API key typed into a name, a text or
any stored field would be stored and shown (what a secret is: :mod:`ttg_lab.secrets`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ttg_lab.errors import ValidationError
from ttg_lab.secrets import SECRET_NAME, secret_in

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def refuse_secret(text: str, what: str) -> None:
    """Raise when ``text`` holds a secret; the error names ``what`` and the secret's
    variable, never the secret."""
    found = secret_in(text)
    if found:
        raise ValidationError(
            f"{what} holds {found}; keep keys in environment variables and refer to them by "
            "variable name"
        )


def refuse_secrets(fields: Mapping[str, Any], what: str) -> None:
    """Raise when a field (any JSON-able data, keys included) holds a secret, or a
    field's name marks it as one: keys belong in environment variables, never in the
    store. The error names ``what`` and the field, never the secret."""
    for field, value in fields.items():
        refuse_secret(field, f"a field name of the {what}")
        if SECRET_NAME.search(field.replace(".", "_").replace(" ", "_")):
            raise ValidationError(
                f"{what} {field!r} looks like a secret; keep keys in environment variables"
            )
        for text in _texts(value):
            refuse_secret(text, f"the {what}'s {field}")


def _texts(value: Any) -> Iterator[str]:
    """Every piece of text in ``value``: strings, dict keys, and anything else as text."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _texts(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _texts(item)
    elif value is not None:
        yield str(value)


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def check_name(value: object, what: str, max_length: int) -> str:
    """``value`` stripped, if it is a non-empty one-line name of at most ``max_length``
    characters without control characters or a secret; else a :class:`ValidationError`
    saying why (never echoing a secret)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{what} must not be empty")
    name = value.strip()
    refuse_secret(name, what)
    if len(name) > max_length:
        raise ValidationError(f"{what} must be at most {max_length} characters, got {len(name)}")
    bad = _CONTROL.search(name)
    if bad is not None:
        raise ValidationError(
            f"{what} {_shown(name)} contains the control character {bad.group()!r}"
        )
    return name


def check_text(value: object, what: str) -> str:
    """``value`` if it is text without NUL or other control characters (tabs and line
    breaks are fine) and without a secret; else a :class:`ValidationError` naming the
    character or the secret's variable."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be text")
    refuse_secret(value, what)
    bad = _CONTROL_BUT_LAYOUT.search(value)
    if bad is not None:
        raise ValidationError(f"{what} contains the control character {bad.group()!r}")
    return value
