"""TTG Lab: a research workbench for LLM trading agents.

Start with :func:`open`, which returns a :class:`~ttg_lab.lab.Lab`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ttg_lab.deferred import defer_rfc3987_syntax
from ttg_lab.errors import (
    DataFileError,
    LookAheadError,
    NotFoundError,
    RunStateError,
    TTGLabError,
    ValidationError,
)
from ttg_lab.version import __version__

defer_rfc3987_syntax()  # before anything imports jsonschema (see ttg_lab.deferred)

if TYPE_CHECKING:
    from ttg_lab.lab import Lab, open_lab

    open = open_lab


def __getattr__(name: str) -> object:
    """``ttg_lab.open`` and ``ttg_lab.Lab`` load the lab on first use, so commands that do
    not need it (``--help``, ``dashboard``) start quickly."""
    if name in ("open", "open_lab", "Lab"):
        from ttg_lab import lab

        return {"open": lab.open_lab, "open_lab": lab.open_lab, "Lab": lab.Lab}[name]
    raise AttributeError(f"module 'ttg_lab' has no attribute {name!r}")


__all__ = [
    "DataFileError",
    "Lab",
    "LookAheadError",
    "NotFoundError",
    "RunStateError",
    "TTGLabError",
    "ValidationError",
    "__version__",
    "open",
]
