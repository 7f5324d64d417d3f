"""TTG Lab: a research workbench for LLM trading agents.

Start with :func:`open`, which returns a :class:`~ttg_lab.lab.Lab`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ttg_lab.deferred import defer_costly_packages
from ttg_lab.errors import (
    DataFileError,
    LookAheadError,
    NotFoundError,
    PermissionDeniedError,
    RunStateError,
    TTGLabError,
    ValidationError,
)
from ttg_lab.version import __version__

defer_costly_packages()  # before anything imports them (see ttg_lab.deferred)

if TYPE_CHECKING:
    from ttg_lab.agents.policy import Decision, MarketView, Order, Policy, register_policy
    from ttg_lab.engine.reader import RunInfo
    from ttg_lab.lab import Lab, open
    from ttg_lab.run import Run, RunList
    from ttg_lab.runs.options import RunOptions


_LAZY = {
    "open": "ttg_lab.lab",
    "Lab": "ttg_lab.lab",
    "Run": "ttg_lab.run",
    "RunList": "ttg_lab.run",
    "RunInfo": "ttg_lab.engine.reader",
    "RunOptions": "ttg_lab.runs.options",
    "Policy": "ttg_lab.agents.policy",
    "Order": "ttg_lab.agents.policy",
    "Decision": "ttg_lab.agents.policy",
    "MarketView": "ttg_lab.agents.policy",
    "register_policy": "ttg_lab.agents.policy",
}
"""The public API's names and their modules, loaded on first use so that commands which
do not need them (``--help``, ``dashboard``) start quickly."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ttg_lab' has no attribute {name!r}")


__all__ = [
    "DataFileError",
    "Decision",
    "Lab",
    "LookAheadError",
    "MarketView",
    "NotFoundError",
    "Order",
    "PermissionDeniedError",
    "Policy",
    "Run",
    "RunInfo",
    "RunList",
    "RunOptions",
    "RunStateError",
    "TTGLabError",
    "ValidationError",
    "__version__",
    "open",
    "register_policy",
]
