"""The notebooks in ``notebooks/`` execute cleanly against a private copy of the test store.

Each notebook runs in its own Jupyter kernel through nbval (lax mode: every cell must
execute without error; outputs are not compared). The papermill template is also run
with custom parameters, and with a bad one to check that papermill reports the problem.
The kernels inherit ``TTG_LAB_DB_URL`` and ``TTG_LAB_REPORTS_DIR`` from the environment,
so nothing touches ``data/ttg_lab.db`` or ``reports/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

import ttg_lab
from ttg_lab.model_rules import RULE_PRESETS

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))
EXPECTED = {"analyst", "compare_models", "dashboard", "quickstart", "run_experiment"}
RESULT_PREFIX = "TTG_RESULT "
SUBPROCESS_TIMEOUT = 240  # seconds; pytest-timeout ends the whole test at 300

pytestmark = pytest.mark.slow


def _store_env(source_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Copy ``source_db`` into ``tmp_path`` and point this process (and so every kernel
    and subprocess it starts) at the copy; returns the copy's URL."""
    target = tmp_path / "notebook-lab.db"
    shutil.copy(source_db, target)
    url = f"sqlite:///{target}"
    monkeypatch.setenv("TTG_LAB_DB_URL", url)
    monkeypatch.setenv("TTG_LAB_REPORTS_DIR", str(tmp_path / "reports"))
    return url


@pytest.fixture()
def notebook_db(template_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """URL of a private store with the shipped market data, set as ``TTG_LAB_DB_URL``."""
    return _store_env(template_db, tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def aitrader_db(template_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template store plus the shipped news and imported AI-Trader runs."""
    path = tmp_path_factory.mktemp("aitrader") / "aitrader.db"
    shutil.copy(template_db, path)
    lab = ttg_lab.open(f"sqlite:///{path}")
    try:
        loaded = lab.data.load_shipped()
        assert loaded["aitrader_runs"] > 0
        with lab.store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        lab.close()
    return path


def _nbval(notebook: Path) -> subprocess.CompletedProcess[str]:
    """Execute ``notebook`` with nbval in a fresh pytest process, in the current env."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "--nbval-current-env",
        "--nbval-cell-timeout=120",
        "-p",
        "no:cacheprovider",
        str(notebook),
        "-q",
    ]
    return subprocess.run(
        command,
        cwd=NOTEBOOKS,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )


def _assert_passed(notebook: Path, proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (
        f"{notebook.name} failed under nbval (exit {proc.returncode})\n"
        f"--- stdout ---\n{proc.stdout[-12000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
    )


def test_the_expected_notebooks_are_there() -> None:
    assert {path.stem for path in NOTEBOOK_FILES} >= EXPECTED


@pytest.mark.parametrize("notebook", NOTEBOOK_FILES, ids=[p.stem for p in NOTEBOOK_FILES])
def test_notebook_executes(notebook: Path, notebook_db: str) -> None:
    _assert_passed(notebook, _nbval(notebook))


@pytest.mark.parametrize("name", ["analyst", "compare_models"])
def test_notebook_executes_with_aitrader_runs(
    name: str, aitrader_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The branches that use the imported AI-Trader runs (skipped on the plain store)."""
    _store_env(aitrader_db, tmp_path, monkeypatch)
    notebook = NOTEBOOKS / f"{name}.ipynb"
    _assert_passed(notebook, _nbval(notebook))


def _stdout_lines(notebook: nbformat.NotebookNode) -> list[str]:
    lines: list[str] = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                lines.extend(output["text"].splitlines())
    return [line for line in lines if line.strip()]


def _execute_experiment(tmp_path: Path, **parameters: object) -> Path:
    import papermill

    output = tmp_path / "experiment-out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / "run_experiment.ipynb"),
        str(output),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(NOTEBOOKS),
        progress_bar=False,
        execution_timeout=120,
    )
    return output


def _result(output: Path) -> dict[str, Any]:
    """The JSON of the executed notebook's ``TTG_RESULT`` line, its last printed line."""
    lines = _stdout_lines(nbformat.read(output, as_version=4))
    assert lines, "the executed notebook printed nothing"
    assert lines[-1].startswith(RESULT_PREFIX), f"last printed line: {lines[-1]!r}"
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX) :])
    return result


def test_run_experiment_with_papermill(notebook_db: str, tmp_path: Path) -> None:
    output = _execute_experiment(
        tmp_path,
        model="pm-test",
        ai_model_id="baseline/mean_reversion",
        rules_preset="conservative",
        start="2025-07-01",
        end="2025-08-29",
        experiment="papermill test",
        tags="ci, mean-reversion",
    )
    result = _result(output)
    assert result["status"] == "completed"
    assert result["model"] == "pm-test"
    assert result["experiment"] == "papermill test"
    assert result["tags"] == ["ci", "mean-reversion"]
    assert result["final_value"] > 0
    assert result["error"] is None

    lab = ttg_lab.open(notebook_db)
    try:
        info = lab.run(result["run_id"]).info
        assert info.status == "completed"
        assert info.model == "pm-test"
        assert info.mode == "daily"
        assert f"{info.start:%Y-%m-%d}" == "2025-07-01"
        assert f"{info.end:%Y-%m-%d}" == "2025-08-29"
        assert info.final_value == pytest.approx(result["final_value"])
        assert info.snapshot.model.ai_model_id == "baseline/mean_reversion"
        assert info.snapshot.agent_path == "direct"
        preset = {spec["name"] for spec in RULE_PRESETS["conservative"]}
        assert {rule.name for rule in lab.rules.list("pm-test")} == preset
        assert preset <= {rule["name"] for rule in info.snapshot.rules.to_list()}
    finally:
        lab.close()
    assert list((tmp_path / "reports").glob(f"run-{result['run_id']}-*.html"))


def test_run_experiment_chat_path_and_replay(notebook_db: str, tmp_path: Path) -> None:
    """The chat path runs inside a kernel (whose main thread already runs an event loop),
    and ``replay_from`` replays that run from its record to the same final value."""
    first = _result(
        _execute_experiment(
            tmp_path, model="pm-chat", path="chat", start="2025-09-01", end="2025-09-30"
        )
    )
    assert first["status"] == "completed", first["error"]
    replay = _result(_execute_experiment(tmp_path, replay_from=first["run_id"]))
    assert replay["status"] == "completed", replay["error"]
    assert replay["model"] == "pm-chat"
    assert replay["replay_of"] == first["run_id"]
    assert replay["run_id"] != first["run_id"]
    assert replay["final_value"] == pytest.approx(first["final_value"])


def test_run_experiment_bad_parameter_fails_with_the_reason(
    notebook_db: str, tmp_path: Path
) -> None:
    import papermill

    with pytest.raises(papermill.PapermillExecutionError) as failure:
        _execute_experiment(tmp_path, model="pm-bad", mode="weekly")
    message = str(failure.value)
    assert "mode must be one of" in message
    assert "weekly" in message
    lab = ttg_lab.open(notebook_db)
    try:  # checked before anything was written
        assert "pm-bad" not in {m.name for m in lab.models.list()}
    finally:
        lab.close()


def _tracked_notebooks() -> set[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", "*.ipynb"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return {ROOT / name for name in listed.split("\0") if name}


def test_notebooks_are_saved_without_outputs() -> None:
    """Tracked notebooks and those in notebooks/ (tracked or about to be) are stripped."""
    paths = sorted(set(NOTEBOOK_FILES) | {p for p in _tracked_notebooks() if p.exists()})
    assert paths
    dirty = []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        assert notebook.metadata.get("kernelspec", {}).get("name") == "python3", path.name
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            if cell.get("outputs") or cell.get("execution_count") is not None:
                dirty.append(f"{path.relative_to(ROOT)} cell {index}")
    assert not dirty, "notebooks saved with outputs: " + ", ".join(dirty)
