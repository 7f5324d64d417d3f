"""Uncertainty that a reviewer would accept: bootstrap intervals.

Bar returns are autocorrelated and fat-tailed, so intervals of a mean come from the
stationary bootstrap (Politis & Romano 1994): resample blocks of random geometric length
(mean ``sqrt(n)``), wrapping around, and take percentiles of the resampled means. Seeds
are fixed, so the same data always gives the same interval.
"""

from __future__ import annotations

import math

import numpy as np

RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 20251128


def stationary_indices(
    n: int, resamples: int, rng: np.random.Generator, block: float
) -> np.ndarray:
    """Index matrix (resamples x n) of stationary-bootstrap samples of 0..n-1."""
    p = 1.0 / max(block, 1.0)
    starts = rng.integers(0, n, size=(resamples, n))
    new_block = rng.random((resamples, n)) < p
    new_block[:, 0] = True
    idx = np.empty((resamples, n), dtype=np.int64)
    current = starts[:, 0].copy()
    idx[:, 0] = current
    for t in range(1, n):
        current = np.where(new_block[:, t], starts[:, t], (current + 1) % n)
        idx[:, t] = current
    return idx


def mean_interval(
    values: np.ndarray,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    block: float | None = None,
) -> tuple[float | None, float | None]:
    """Bootstrap percentile interval of the mean of ``values`` (None if fewer than 2)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return None, None
    rng = np.random.default_rng(SEED)
    if block is None:
        block = math.sqrt(n)
    if n > 5000:  # long series: resample block means of a thinned grid to stay fast
        step = n // 5000 + 1
        values = np.add.reduceat(values, np.arange(0, n, step)) / step
        n = len(values)
        block = max(1.0, block / step)
    idx = stationary_indices(n, resamples, rng, block)
    means = values[idx].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def excess_interval(excess: np.ndarray, periods: float) -> tuple[float | None, float | None]:
    """Interval of the annualised mean excess return per bar (mean x periods per year)."""
    low, high = mean_interval(excess)
    if low is None or high is None:
        return None, None
    return low * periods, high * periods


def iid_mean_interval(
    values: np.ndarray, resamples: int = RESAMPLES, confidence: float = CONFIDENCE
) -> tuple[float | None, float | None]:
    """Plain bootstrap interval of a mean of independent values (e.g. returns of
    separate runs of one model)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return None, None
    rng = np.random.default_rng(SEED)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))
