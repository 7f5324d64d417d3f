"""Importers of other platforms' run outputs into the store (AI-Trader's, for now)."""

from __future__ import annotations

from ttg_lab.importers.aitrader import ImportReport, ModelResult, Problem, import_aitrader

__all__ = ["ImportReport", "ModelResult", "Problem", "import_aitrader"]
