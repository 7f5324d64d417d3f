"""Helpers shared by the benchmark scripts: a fresh store and simple timing."""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ttg_lab
from ttg_lab.lab import Lab


def fresh_lab() -> Lab:
    """A lab on a new temporary SQLite store with the shipped data loaded."""
    folder = Path(tempfile.mkdtemp(prefix="ttg-bench-"))
    return ttg_lab.open(f"sqlite:///{folder / 'bench.db'}")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
