"""One parser for every date and time a user, a file of parameters or an agent gives.

Simulated times are naive exchange-local datetimes (see :mod:`ttg_lab.store.schema`), so
every date input ends as one: the API (run periods, leaderboard, reasoning and metrics
filters, data reads), the CLI, the dashboard's fields, batch files and the agents' tool
arguments all call :func:`parse_date`.

Accepted: a ``datetime`` or ``date`` (pandas ``Timestamp`` and numpy ``datetime64``
included) or ISO-8601 text ``YYYY-MM-DD``, optionally followed by `` HH:MM[:SS]`` (or
``T``) and a UTC offset (``Z``, ``+02:00``). A time with an offset (an *aware* time) names
an instant: where the market is known it is converted to that market's local time; where
it is not, it is refused, since no exchange says which local time it means.

Refused, with a :class:`~ttg_lab.errors.ValidationError` naming the value and what it was
for: empty text, ``NaT``/NaN, ``None`` where a date is required, numbers and bools (a
number is not a date: ``20250701`` would be read as nanoseconds since 1970), any other
text ("now", "07/01/2025"), and dates outside :data:`EARLIEST`..:data:`LATEST`.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from ttg_lab.errors import ValidationError, shown

EARLIEST = datetime(1900, 1, 1)
LATEST = datetime(2199, 12, 31, 23, 59, 59, 999999)
"""The range of dates accepted: anything outside is a typo, not a market time."""

FORMATS = "YYYY-MM-DD or YYYY-MM-DD HH:MM"
"""How the error messages ask for a date."""

_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}"  # the day
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?"  # the time of day
    r"(?:Z|[+-]\d{2}:?\d{2})?"  # a UTC offset
)


def _refuse(value: object, what: str, why: str) -> ValidationError:
    return ValidationError(f"{what} {shown(value)} is not a date: {why}; give {FORMATS}")


def _from_text(text: str, what: str) -> datetime:
    stripped = text.strip()
    if not stripped:
        raise _refuse(text, what, "it is empty")
    if not _ISO.fullmatch(stripped):
        raise _refuse(text, what, "not an ISO-8601 date")
    try:
        return datetime.fromisoformat(stripped)
    except ValueError as exc:  # 2025-02-30, 25:00 ...
        raise _refuse(text, what, str(exc)) from None


def _as_datetime(value: object, what: str) -> datetime:
    """A datetime (maybe aware) from any accepted input."""
    if value is None:
        raise _refuse(value, what, "a date is required")
    if value is pd.NaT or (isinstance(value, np.datetime64) and np.isnat(value)):
        raise _refuse(value, what, "it is a missing value (NaT)")
    if isinstance(value, bool | np.bool_):
        raise _refuse(value, what, "a bool is not a date")
    if isinstance(value, int | float | np.number):
        raise _refuse(value, what, "a number is not a date")
    if isinstance(value, str):
        return _from_text(value, what)
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).to_pydatetime()
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    raise _refuse(value, what, f"a {type(value).__name__} is not a date")


def parse_date(value: object, what: str, timezone: str | None = None) -> datetime:
    """``value`` as a naive exchange-local datetime, or a ValidationError naming it.

    ``what`` says what the date is for ("start of the run"); ``timezone`` is the market's
    (an IANA name such as ``America/New_York``) when one market is in play: an aware time
    is converted to it, and refused without one.
    """
    when = _as_datetime(value, what)
    _check_range(when.replace(tzinfo=None), value, what)  # before converting: no overflow
    if when.utcoffset() is not None:
        if timezone is None:
            raise ValidationError(
                f"{what} {shown(value)} carries a UTC offset, but no market says which local time "
                "it means here; give a naive exchange-local time"
            )
        when = when.astimezone(ZoneInfo(timezone))
    return _check_range(when.replace(tzinfo=None), value, what)


def _check_range(when: datetime, value: object, what: str) -> datetime:
    if not EARLIEST <= when <= LATEST:
        raise _refuse(
            value, what, f"out of range ({EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} are accepted)"
        )
    return when


def parse_optional_date(value: object, what: str, timezone: str | None = None) -> datetime | None:
    """:func:`parse_date`, except that ``None`` (not given) stays ``None``.

    Only ``None`` means "not given": empty text is refused like any other bad value.
    """
    return None if value is None else parse_date(value, what, timezone)


def day_of(when: datetime) -> datetime:
    """Midnight of ``when``'s day: how daily bars are labelled."""
    return datetime.combine(when.date(), time())


def inclusive_end(when: datetime) -> datetime:
    """The last moment an end bound covers: a bare day (midnight) covers the whole day."""
    if when.time() == time():
        return datetime.combine(when.date(), time.max)
    return when
