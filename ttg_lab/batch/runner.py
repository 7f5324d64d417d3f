"""Running an experiment: papermill executions of the template, one output notebook per
run under ``reports/<experiment>/``, isolated failures, resumable, with a summary report."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ttg_lab.batch.executors import Executor, Job, Result, make_executor
from ttg_lab.batch.experiment import Experiment, RunSpec
from ttg_lab.config import PROJECT_ROOT
from ttg_lab.secrets import redact

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


@dataclass
class BatchSummary:
    name: str
    folder: Path
    results: list[Result] = field(default_factory=list)
    skipped: int = 0
    report: Path | None = None

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
                    "status": r["status"],
                    "run_id": result.get("run_id"),
                    "final_value": result.get("final_value"),
                    "return": result.get("final_return"),
                    "error": r.get("error"),
                }
            )
        return pd.DataFrame(rows)


class BatchRunner:
    """Runs an experiment's parameter sets, skipping the ones already done."""

    def __init__(
        self,
        experiment: Experiment,
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

    def job(self, spec: RunSpec) -> Job:
        parameters = {**spec.parameters, "experiment": self.experiment.name}
        return {
            "key": spec.key,
            "parameters": parameters,
            "template": str(self.template),
            "output": str(self.folder / f"{spec.key}.ipynb"),
            "db_url": self.db_url,
            "user": self.user,
            "reports_dir": str(self.folder),
        }

    def run(self, on_result: Callable[[Result], None] | None = None) -> BatchSummary:
        state = self.state()
        todo = [s for s in self.experiment.runs if state.get(s.key, {}).get("status") != "done"]
        summary = BatchSummary(
            self.experiment.name, self.folder, skipped=len(self.experiment.runs) - len(todo)
        )
        for result in self.executor.run(
            execute_notebook, [self.job(s) for s in todo], self.experiment.concurrency
        ):
            state[result["key"]] = result
            self._save(state)
            if on_result:
                on_result(result)
        summary.results = [state[s.key] for s in self.experiment.runs if s.key in state]
        summary.report = self.write_summary(summary)
        return summary

    def write_summary(self, summary: BatchSummary) -> Path:
        """A table of every run of the experiment, and a comparison report of the done ones."""
        import ttg_lab
        from ttg_lab.reports import comparison_report

        frame = summary.frame()
        self.folder.mkdir(parents=True, exist_ok=True)
        frame.to_csv(self.folder / "summary.csv", index=False)
        run_ids = sorted({int(r) for r in frame["run_id"].dropna()})
        if len(run_ids) >= 2:
            lab = ttg_lab.open(self.db_url, init=False, user=self.user)
            try:
                return comparison_report(lab, run_ids, self.folder / "summary.html")
            finally:
                lab.close()
        return self.folder / "summary.csv"
