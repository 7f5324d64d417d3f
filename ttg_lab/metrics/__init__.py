"""Performance metrics, documented in :mod:`ttg_lab.metrics.reference`."""

from ttg_lab.metrics.compute import compute_metrics, periods_per_year, round_trips
from ttg_lab.metrics.reference import METRIC_KEYS, METRICS
from ttg_lab.metrics.stored import run_metrics, store_metrics

__all__ = [
    "METRICS",
    "METRIC_KEYS",
    "compute_metrics",
    "periods_per_year",
    "round_trips",
    "run_metrics",
    "store_metrics",
]
