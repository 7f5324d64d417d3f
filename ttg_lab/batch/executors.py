"""Where batch runs execute: a small pluggable interface with a local process pool and a
Dask cluster. Adding Ray is one more class in :data:`EXECUTORS`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Protocol

Job = dict[str, Any]
Result = dict[str, Any]


class Executor(Protocol):
    """Runs ``fn`` on every job, at most ``concurrency`` at once, yielding results as they end."""

    def run(
        self, fn: Callable[[Job], Result], jobs: list[Job], concurrency: int
    ) -> Iterator[Result]: ...


class LocalExecutor:
    """A process pool on this machine (each job in its own worker process)."""

    def run(
        self, fn: Callable[[Job], Result], jobs: list[Job], concurrency: int
    ) -> Iterator[Result]:
        with ProcessPoolExecutor(max_workers=concurrency) as pool:
            futures = [pool.submit(fn, job) for job in jobs]
            for future in as_completed(futures):
                yield future.result()


class DaskExecutor:
    """A Dask distributed cluster (``tcp://host:port``); the store must be shared
    (PostgreSQL, or an SQLite file every worker can reach)."""

    def __init__(self, scheduler: str) -> None:
        self.scheduler = scheduler

    def run(
        self, fn: Callable[[Job], Result], jobs: list[Job], concurrency: int
    ) -> Iterator[Result]:
        from distributed import Client, Semaphore
        from distributed import as_completed as dask_completed

        with Client(self.scheduler, timeout="30s") as client:  # type: ignore[no-untyped-call]
            limit = Semaphore(max_leases=concurrency, name="ttg-lab-batch")  # type: ignore[no-untyped-call]

            def limited(job: Job) -> Result:
                with limit:
                    return fn(job)

            futures = client.map(limited, jobs, pure=False)
            for future in dask_completed(futures):  # type: ignore[no-untyped-call]
                yield future.result()


def make_executor(scheduler: str | None) -> Executor:
    """The local pool, or Dask when a scheduler address is given."""
    return DaskExecutor(scheduler) if scheduler else LocalExecutor()


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor, "dask": DaskExecutor}
