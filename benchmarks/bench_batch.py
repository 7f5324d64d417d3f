"""Batch throughput on this machine: 8 runs through the local pool with 1 and 2 workers
(runs per minute), and papermill's overhead per run against calling the run API directly."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from _common import fresh_lab

from ttg_lab.batch.executors import LocalExecutor
from ttg_lab.batch.experiment import parse_experiment
from ttg_lab.batch.runner import BatchRunner


def doc(name: str) -> dict[str, object]:
    return {
        "name": name,
        "base": {"mode": "daily", "path": "direct"},
        "grid": {
            "ai_model_id": ["baseline/momentum", "baseline/mean_reversion"],
            "period": [
                {"start": "2025-06-10", "end": "2025-07-31"},
                {"start": "2025-08-01", "end": "2025-10-30"},
            ],
            "seed": [0, 1],
        },
    }


def main() -> None:
    lab = fresh_lab()
    reports = Path(tempfile.mkdtemp(prefix="ttg-batch-"))
    per_run: list[float] = []
    for workers in (1, 2):
        spec = parse_experiment(doc(f"throughput-{workers}"))
        spec.concurrency = workers
        start = time.perf_counter()
        summary = BatchRunner(spec, lab.config.db_url, reports, LocalExecutor()).run()
        wall = time.perf_counter() - start
        per_run += [r["seconds"] for r in summary.results]
        print(
            f"{len(summary.done)} runs with {workers} worker(s): {wall:.1f} s, "
            f"{len(summary.done) / wall * 60:.1f} runs per minute"
        )
    model = lab.models.create(
        "direct probe", ai_model_id="baseline/momentum", initial_cash=100_000.0
    )
    direct = []
    for start_, end in (("2025-06-10", "2025-07-31"), ("2025-08-01", "2025-10-30")):
        t = time.perf_counter()
        lab.start_run(model, start=start_, end=end, path="direct", background=False)
        direct.append(time.perf_counter() - t)
    print(
        f"one run through papermill: median {statistics.median(per_run):.2f} s; "
        f"through the API directly: {statistics.median(direct):.2f} s; papermill overhead "
        f"{statistics.median(per_run) - statistics.median(direct):.2f} s per run (kernel start, "
        "imports, report)"
    )


if __name__ == "__main__":
    main()
