"""Equity-curve arithmetic: the one drawdown formula, shared by the engine's end-of-run
bookkeeping, the importer, the metrics and the charts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


def drawdowns(equity: Sequence[float] | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Depth below the running peak at each point: E_t / max(E_0..E_t) - 1 (0 or negative;
    0 while the peak is not positive)."""
    values = np.asarray(equity, dtype=float)
    peaks = np.maximum.accumulate(values) if len(values) else values
    with np.errstate(divide="ignore", invalid="ignore"):
        depth: npt.NDArray[np.float64] = np.where(peaks > 0, values / peaks - 1.0, 0.0)
    return depth


def max_drawdown(equity: Sequence[float] | npt.NDArray[np.float64]) -> float:
    """Largest peak-to-trough fall of an equity series, as a negative fraction (0 if none)."""
    depth = drawdowns(equity)
    return float(depth.min()) if len(depth) else 0.0
