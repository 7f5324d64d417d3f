"""Import AI-Trader's published agent runs into the store as completed, read-only runs.

Two steps: :mod:`~ttg_lab.importers.aitrader.read` turns a model folder (or the shipped
compact file) into typed records, :mod:`~ttg_lab.importers.aitrader.book` books them as
a model and a completed run in one transaction.
"""

from __future__ import annotations

from ttg_lab.importers.aitrader.book import (
    ImportReport,
    ModelResult,
    import_aitrader,
    import_sources,
)
from ttg_lab.importers.aitrader.read import (
    ACTIONS,
    LogSource,
    ModelSource,
    Problem,
    SourceFile,
    find_model_folders,
    parse_model,
    read_folder_layout,
    read_model_folder,
)

__all__ = [
    "ACTIONS",
    "ImportReport",
    "LogSource",
    "ModelResult",
    "ModelSource",
    "Problem",
    "SourceFile",
    "find_model_folders",
    "import_aitrader",
    "import_sources",
    "parse_model",
    "read_folder_layout",
    "read_model_folder",
]
