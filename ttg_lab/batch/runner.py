"""Running an experiment: papermill executions of the template, one output notebook per
run under ``reports/<experiment>/``, isolated failures, resumable, with a summary report.

An experiment with a batch ``budget`` runs in waves of ``concurrency`` parameter sets:
before each wave the batch's total spend is read from the store (every recorded LLM call of
its runs, those of earlier executions of the batch and wasted ones included); once it
reaches a cap no new run starts (the rest are recorded ``budget``, to run on a later
execution with a higher cap), and otherwise each run of the wave (every repeat of a set,
both arms of a memorisation gap) gets an equal share of what remains as its own cap (one
run alone: all of it), never more than the run's own cap. So the batch's total stays
within its caps, like a run's within its own, and the arms of a gap get the same cap.

An experiment with a ``data`` section fetches each entry, in order, before its first
execution (:meth:`BatchRunner.fetch_data`, through ``lab.data.fetch`` as the batch's user);
the reports are written to ``fetch.txt`` in its folder, and a failed fetch stops the
batch with a :class:`BatchDataError` before any run starts.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import func, select

from ttg_lab.batch.executors import Executor, Job, Result, make_executor
from ttg_lab.batch.experiment import ExperimentFile, RunSpec
from ttg_lab.config import PROJECT_ROOT
from ttg_lab.engine.budget import Spend
from ttg_lab.errors import TTGLabError
from ttg_lab.secrets import redact
from ttg_lab.store.database import Store
from ttg_lab.store.schema import LLMCall

if TYPE_CHECKING:
    from ttg_lab.market.fetch import FetchProgress, FetchReport

CALL_TOKENS = LLMCall.prompt_tokens + LLMCall.completion_tokens
FETCH_LOG = "fetch.txt"
"""The batch folder's record of its last data fetch."""


class BatchDataError(TTGLabError):
    """A fetch of the experiment's ``data`` failed: no run of the batch was started."""


@dataclass(frozen=True)
class BatchSpend:
    """What a batch's runs spent in all, and the most one of their calls did."""

    total: Spend
    largest_call: Spend


TEMPLATE = PROJECT_ROOT / "notebooks" / "run_experiment.ipynb"
RESULT_PREFIX = "TTG_RESULT "


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in the environment (which the notebook's kernel inherits) while the
    block runs, the caller's environment as it was afterwards: a rerun in a notebook or
    the CLI must not leave that process acting as another user on another store."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute_notebook(job: Job) -> Result:
    """Execute the template with one parameter set (in a worker process, or in the
    caller's for a rerun)."""
    import papermill

    started = time.perf_counter()
    output = Path(job["output"])
    output.parent.mkdir(parents=True, exist_ok=True)
    kernel_env = {"TTG_LAB_DB_URL": job["db_url"]}
    if job.get("user"):  # the runs belong to whoever started the batch
        kernel_env["TTG_LAB_USER"] = job["user"]
    if job.get("reports_dir"):
        kernel_env["TTG_LAB_REPORTS_DIR"] = job["reports_dir"]
    base = {"key": job["key"], "output": str(output), "parameters": job["parameters"]}
    try:
        with _environment(kernel_env):
            papermill.execute_notebook(
                job["template"],
                str(output),
                parameters=job["parameters"],
                kernel_name="python3",
                cwd=str(Path(job["template"]).parent),
                progress_bar=False,
                log_output=False,
            )
    except Exception as exc:  # one failed run is recorded; the batch goes on
        reason = f"{getattr(exc, 'ename', type(exc).__name__)}: {getattr(exc, 'evalue', exc)}"
        return {
            **base,
            "status": "failed",
            "result": read_result(output) if output.exists() else None,  # its run, if any
            "error": redact(str(reason))[:2000],
            "seconds": time.perf_counter() - started,
        }
    result = read_result(output)
    status = "done" if result else "failed"
    error = None if result else "the notebook finished without a TTG_RESULT line"
    return {
        **base,
        "status": status,
        "result": result,
        "error": error,
        "seconds": time.perf_counter() - started,
    }


def read_result(notebook: Path) -> dict[str, Any] | None:
    """The run summary the template printed (its last ``TTG_RESULT`` line)."""
    found = None
    for cell in json.loads(notebook.read_text(encoding="utf-8")).get("cells", []):
        for out in cell.get("outputs", []):
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            for line in text.splitlines():
                if line.startswith(RESULT_PREFIX):
                    found = json.loads(line[len(RESULT_PREFIX) :])
    return found


def result_runs(result: Result) -> list[int]:
    """The ids of the runs an execution started: its repeats' (``run_ids``), or its run."""
    found = result.get("result") or {}
    ids = found.get("run_ids") or ([found["run_id"]] if found.get("run_id") else [])
    return [int(i) for i in ids]


def spent_runs(result: Result) -> list[int]:
    """Every run a parameter set's executions started, earlier ones included: what the
    batch's budget counts (an execution's result replaces the last one's in the state)."""
    return sorted({*result_runs(result), *(int(i) for i in result.get("earlier_run_ids", []))})


@dataclass
class BatchSummary:
    name: str
    folder: Path
    results: list[Result] = field(default_factory=list)
    skipped: int = 0
    report: Path | None = None
    fetches: list[FetchReport] = field(default_factory=list)  # its data section's

    @property
    def done(self) -> list[Result]:
        return [r for r in self.results if r["status"] == "done"]

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r["status"] != "done"]

    def frame(self) -> pd.DataFrame:
        rows = []
        for r in self.results:
            result = r.get("result") or {}
            rows.append(
                {
                    "key": r["key"],
                    "model": r["parameters"]["model"],
                    "ai_model_id": r["parameters"]["ai_model_id"],
                    "period": f"{r['parameters']['start']}..{r['parameters']['end']}",
                    "seed": r["parameters"]["seed"],
                    "repeats": r["parameters"].get("repeats", 1),
                    "status": r["status"],
                    "run_id": result.get("run_id"),
                    "experiment_id": result.get("experiment_id"),
                    "final_value": result.get("final_value"),
                    "return": result.get("final_return"),
                    "error": r.get("error"),
                    # a memorisation gap's: a column only when the batch ran one
                    **{k: result[k] for k in ("gap_id", "memorisation_gap") if k in result},
                }
            )
        return pd.DataFrame(rows)


class BatchRunner:
    """Runs an experiment's parameter sets, skipping the ones already done."""

    def __init__(
        self,
        experiment: ExperimentFile,
        db_url: str,
        reports_dir: Path,
        executor: Executor | None = None,
        template: Path | None = None,
        user: str | None = None,
    ) -> None:
        self.experiment = experiment
        self.db_url = db_url
        self.user = user
        self.folder = reports_dir / experiment.name
        self.executor = executor or make_executor(None)
        self.template = template or (Path(experiment.template) if experiment.template else TEMPLATE)
        self.state_path = self.folder / "state.json"

    def state(self) -> dict[str, Result]:
        if not self.state_path.exists():
            return {}
        data = json.loads(self.state_path.read_text())
        return data if isinstance(data, dict) else {}

    def _save(self, state: dict[str, Result]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.state_path.with_suffix(".tmp")
        partial.write_text(json.dumps(state, indent=1, default=str))
        partial.replace(self.state_path)

    def job(self, spec: RunSpec, caps: Mapping[str, float | int] | None = None) -> Job:
        """The execution of ``spec``; ``caps`` (each run's share of a batch budget) replace
        its runs' own caps where they are lower (a cap of 0 is none)."""
        parameters = {
            **spec.parameters,
            "experiment": self.experiment.name,
            "repeat_group": f"{self.experiment.name}/{spec.key}",
        }
        for key, share in (caps or {}).items():
            own = parameters[key]
            parameters[key] = share if not own else min(own, share)
        return {
            "key": spec.key,
            "parameters": parameters,
            "template": str(self.template),
            "output": str(self.folder / f"{spec.key}.ipynb"),
            "db_url": self.db_url,
            "user": self.user,
            "reports_dir": str(self.folder),
        }

    def run(
        self,
        on_result: Callable[[Result], None] | None = None,
        on_fetch: Callable[[FetchProgress], None] | None = None,
    ) -> BatchSummary:
        """Fetch the ``data`` section (when a run is left to do), then run what is left."""
        state = self.state()
        todo = [s for s in self.experiment.runs if state.get(s.key, {}).get("status") != "done"]
        summary = BatchSummary(
            self.experiment.name, self.folder, skipped=len(self.experiment.runs) - len(todo)
        )
        if todo:
            summary.fetches = self.fetch_data(on_fetch)
        if self.experiment.budget.capped:
            self._run_in_waves(todo, state, on_result)
        else:
            jobs = [self.job(s) for s in todo]
            for result in self.executor.run(execute_notebook, jobs, self.experiment.concurrency):
                self._record(state, result, on_result)
        summary.results = [state[s.key] for s in self.experiment.runs if s.key in state]
        summary.report = self.write_summary(summary)
        return summary

    def fetch_data(
        self, on_progress: Callable[[FetchProgress], None] | None = None
    ) -> list[FetchReport]:
        """Fetch each ``data`` entry through the lab, as the batch's user (admins only; the
        answers cached, so a rerun asks nothing twice), and record the reports in
        :data:`FETCH_LOG`; the first that fails ends the fetch with a BatchDataError
        naming its provider, symbols and reasons."""
        import ttg_lab

        if not self.experiment.data:
            return []
        reports: list[FetchReport] = []
        lab = ttg_lab.open(self.db_url, init=False, user=self.user)
        try:
            for entry in self.experiment.data:
                report = lab.data.fetch(
                    entry.provider,
                    entry.market,
                    symbols=entry.symbols,
                    universe=entry.universe,
                    interval=entry.interval,
                    start=entry.start,
                    end=entry.end,
                    base_url=entry.base_url,
                    on_progress=on_progress,
                )
                reports.append(report)
                if not report.ok:
                    raise BatchDataError(
                        f"batch {self.experiment.name} not started: the fetch of "
                        f"{entry.label} failed: {_failures(report)}"
                    )
        finally:
            lab.close()
            self._log_fetches(reports)
        return reports

    def _log_fetches(self, reports: list[FetchReport]) -> None:
        """Each report's summary and its symbols' lines, in the batch's folder."""
        lines = []
        for report in reports:
            lines += [report.summary(), *(f"  {r.summary()}" for r in report.results)]
            lines += [f"  not fetched (stopped): {s}" for s in report.stopped]
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / FETCH_LOG).write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _run_in_waves(
        self,
        todo: list[RunSpec],
        state: dict[str, Result],
        on_result: Callable[[Result], None] | None,
    ) -> None:
        """Under a batch budget: ``concurrency`` parameter sets at a time, each of their
        runs with an equal share of what remains, none once it is spent (see the module's
        docstring)."""
        concurrency = self.experiment.concurrency
        for first in range(0, len(todo), concurrency):
            wave = todo[first : first + concurrency]
            caps, note = self._shares(state, sum(spec.runs for spec in wave))
            if caps is None:
                for spec in todo[first:]:
                    self._record(state, self._not_started(spec, note), on_result)
                return
            jobs = [self.job(spec, caps) for spec in wave]
            for result in self.executor.run(execute_notebook, jobs, concurrency):
                self._record(state, result, on_result)

    def _record(
        self, state: dict[str, Result], result: Result, on_result: Callable[[Result], None] | None
    ) -> None:
        previous = state.get(result["key"])
        earlier = set(spent_runs(previous)) - set(result_runs(result)) if previous else set()
        if earlier:
            result["earlier_run_ids"] = sorted(earlier)
        state[result["key"]] = result
        self._save(state)
        if on_result:
            on_result(result)

    def spent(self, state: dict[str, Result]) -> BatchSpend:
        """What the batch's runs (those its results name) spent on LLM calls so far."""
        run_ids = sorted({i for r in state.values() for i in spent_runs(r)})
        store = Store(self.db_url)
        try:
            with store.session() as session:
                cost, tokens, top_cost, top_tokens = session.execute(
                    select(
                        func.coalesce(func.sum(LLMCall.cost), 0.0),
                        func.coalesce(func.sum(CALL_TOKENS), 0),
                        func.coalesce(func.max(LLMCall.cost), 0.0),
                        func.coalesce(func.max(CALL_TOKENS), 0),
                    ).where(LLMCall.run_id.in_(run_ids))
                ).one()
        finally:
            store.dispose()
        return BatchSpend(Spend(float(cost), int(tokens)), Spend(float(top_cost), int(top_tokens)))

    def _shares(
        self, state: dict[str, Result], runs: int
    ) -> tuple[dict[str, float | int] | None, str]:
        """Each of ``runs`` new runs' share of the batch budget's remainder (None: no new
        run, the remainder being spent or less than the batch's largest call so far, which
        a run with less could not make), and what was spent, said for the record."""
        budget, spent = self.experiment.budget, self.spent(state)
        total, largest = spent.total, spent.largest_call
        note = f"the batch spent ${total.cost:.6f} and {total.tokens} tokens"
        caps: dict[str, float | int] = {}
        if budget.max_cost_usd is not None:
            share = (budget.max_cost_usd - total.cost) / runs
            if share <= 0 or share < largest.cost:
                return None, f"{note} of its budget max_cost_usd={budget.max_cost_usd:g}"
            caps["max_cost_usd"] = share
        if budget.max_tokens is not None:
            tokens = (budget.max_tokens - total.tokens) // runs
            if tokens < max(1, largest.tokens):
                return None, f"{note} of its budget max_tokens={budget.max_tokens}"
            caps["max_tokens"] = tokens
        return caps, note

    def _not_started(self, spec: RunSpec, reason: str) -> Result:
        job = self.job(spec)
        return {
            "key": spec.key,
            "output": job["output"],
            "parameters": job["parameters"],
            "status": "budget",
            "error": f"not started: {reason}; run the batch again with a higher budget",
            "seconds": 0.0,
        }

    def write_summary(self, summary: BatchSummary) -> Path:
        """A table of every run of the experiment, and a comparison report of the done ones."""
        import ttg_lab
        from ttg_lab.reports import comparison_report

        frame = summary.frame()
        self.folder.mkdir(parents=True, exist_ok=True)
        frame.to_csv(self.folder / "summary.csv", index=False)
        run_ids = sorted({i for r in summary.results for i in result_runs(r)})
        if len(run_ids) >= 2:
            lab = ttg_lab.open(self.db_url, init=False, user=self.user)
            try:
                return comparison_report(lab, run_ids, self.folder / "summary.html")
            finally:
                lab.close()
        return self.folder / "summary.csv"


def _failures(report: FetchReport) -> str:
    """What failed in ``report``: each symbol with its reason (provider, symbol, why)."""
    failed = [str(r.error) for r in report.failed]
    failed += [f"{s}: not fetched (stopped)" for s in report.stopped]
    return "; ".join(failed)
