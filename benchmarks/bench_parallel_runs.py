"""Parallel runs on one store: one baseline run alone, then eight at once, each a
``ttg-lab run`` process (as a user or a batch starts them), on SQLite (WAL) and PostgreSQL.

Prints wall times, the ratio of the eight against 8 x one alone (below 1 means running
them together beats running them one after another), and each run's time "in the run":
from its row being recorded to its end (building the agent and stepping, without the
process's start-up and imports before it). Momentum over the whole shipped NASDAQ-100
daily range, on both agent paths (chat: the default, through the MCP tools; direct).

PostgreSQL: a throw-away database on the server named by ``--pg-url`` or
``TTG_LAB_TEST_PG_URL`` (the role needs CREATEDB); skipped with a line saying so without one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

import ttg_lab
from ttg_lab.lab import Lab
from ttg_lab.store.schema import TradingRun

TTG_LAB = Path(sys.executable).parent / "ttg-lab"
PARALLEL = 8
PATHS = ("chat", "direct")


@contextmanager
def pg_database(server_url: str) -> Iterator[str]:
    """A new database on the server, dropped afterwards; yields its URL."""
    name = f"ttg_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def prepared_lab(url: str) -> Lab:
    """The store with the US daily data and one momentum model per run slot."""
    lab = ttg_lab.open(url, init=False)
    lab.data.load_shipped(["us_daily"])
    for i in range(PARALLEL + 1):
        lab.models.create(f"par {i}", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    return lab


def start(url: str, model: str, path: str, logs: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TTG_LAB_DB_URL": url, "COLUMNS": "160"}
    return subprocess.Popen(
        [str(TTG_LAB), "run", model, "--path", path],
        stdout=subprocess.DEVNULL,
        stderr=(logs / f"{model}-{path}.err").open("wb"),
        env=env,
    )


def run_batch(url: str, models: list[str], path: str, logs: Path) -> float:
    """Start a process per model at once; wall seconds until the last one ends."""
    began = time.perf_counter()
    procs = [start(url, m, path, logs) for m in models]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - began
    for model, code in zip(models, codes, strict=True):
        err = (logs / f"{model}-{path}.err").read_text(errors="replace")
        if code != 0 or "locked" in err.lower():
            print(f"  !! {model} ({path}) exit {code}: {err.strip()[-400:]}")
    return wall


def run_seconds(lab: Lab, models: list[str]) -> list[float]:
    """Recorded..ended of each model's latest run; reports any run that did not complete."""
    seconds = []
    for model in models:
        run_id = lab.runs(model)[0].id
        with lab.store.session() as session:
            run = session.scalars(select(TradingRun).where(TradingRun.id == run_id)).one()
            if run.status != "completed" or run.steps_done != run.steps_total:
                print(
                    f"  !! run {run_id} of {model}: {run.status} {run.steps_done}/{run.steps_total}"
                )
            assert run.ended_at is not None
            seconds.append((run.ended_at - run.started_at).total_seconds())
    return seconds


def bench(label: str, url: str) -> None:
    lab = prepared_lab(url)
    logs = Path(tempfile.mkdtemp(prefix="ttg-par-"))
    try:
        for path in PATHS:
            alone = run_batch(url, ["par-0"], path, logs)
            alone_steps = run_seconds(lab, ["par-0"])[0]
            models = [f"par-{i}" for i in range(1, PARALLEL + 1)]
            together = run_batch(url, models, path, logs)
            steps = run_seconds(lab, models)
            steps_total = lab.runs("par-0").table().iloc[0]["steps"]
            print(
                f"{label:<10} {path:<6} one alone {alone:6.2f} s (in the run {alone_steps:5.2f} s, "
                f"{steps_total} steps); {PARALLEL} in parallel {together:6.2f} s "
                f"(in the run: median {statistics.median(steps):5.2f} s, max {max(steps):5.2f} s); "
                f"ratio to {PARALLEL} x alone {together / (PARALLEL * alone):.2f}"
            )
    finally:
        lab.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("TTG_LAB_TEST_PG_URL", ""))
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; momentum, whole NASDAQ-100, shipped daily range")
    folder = Path(tempfile.mkdtemp(prefix="ttg-bench-"))
    bench("sqlite", f"sqlite:///{folder / 'bench.db'}")
    if not args.pg_url:
        print("postgresql: skipped (set TTG_LAB_TEST_PG_URL or pass --pg-url)")
        return
    with pg_database(args.pg_url) as url:
        bench("postgresql", url)


if __name__ == "__main__":
    main()
