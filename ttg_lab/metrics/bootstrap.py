"""Uncertainty that a reviewer would accept: bootstrap intervals.

Bar returns are autocorrelated and fat-tailed, so intervals of a mean come from the
stationary bootstrap (Politis & Romano 1994): resample blocks of random geometric length
(mean ``sqrt(n)``), wrapping around, and take percentiles of the resampled means. Series
longer than 2,000 bars are first averaged in consecutive batches (batch means keep the
overall mean and most of the dependence), which keeps a million bars fast. Seeds are
fixed, so the same data always gives the same interval.
"""

from __future__ import annotations

import math

import numpy as np

RESAMPLES = 1000
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
    positions = np.arange(n)
    # for every t, where its block began: the last t' <= t that starts a new block
    began = np.maximum.accumulate(np.where(new_block, positions, 0), axis=1)
    first = np.take_along_axis(starts, began, axis=1)
    idx: np.ndarray = (first + (positions - began)) % n
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
    if n > 2000:  # long series: resample the means of consecutive batches to stay fast
        step = n // 2000 + 1
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
