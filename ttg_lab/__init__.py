"""TTG Lab: a research workbench for LLM trading agents.

Start with :func:`open`, which returns a :class:`~ttg_lab.lab.Lab`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ttg_lab.errors import (
    DataFileError,
    LookAheadError,
    NotFoundError,
    RunStateError,
    TTGLabError,
    ValidationError,
)
from ttg_lab.lab import Lab, open_lab

open = open_lab

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
