"""``ttg-lab batch --rerun RUN``: execute the template again with a finished run's recorded
parameters and check that the new ledger is the same."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttg_lab.batch.runner import TEMPLATE, execute_notebook
from ttg_lab.engine.ledger import REPRODUCED_COLUMNS
from ttg_lab.errors import RunStateError, ValidationError

if TYPE_CHECKING:
    from ttg_lab.lab import Lab


def rerun(lab: Lab, run_id: int) -> dict[str, Any]:
    """Re-execute run ``run_id`` from its provenance; the new run id and whether the
    ledgers are identical."""
    run = lab.run(run_id)
    info = run.info
    parameters = info.snapshot.experiment.get("parameters")
    if not parameters:
        raise ValidationError(
            f"run {run_id} was not started by an experiment: no parameters to rerun"
        )
    if info.status != "completed":
        raise RunStateError(f"run {run_id} is {info.status}; only completed runs can be rerun")
    # one repeat of an experiment is re-executed alone, with its own seed
    parameters = {**parameters, "seed": info.snapshot.seed, "repeats": 1, "repeat_group": ""}
    folder = Path(tempfile.mkdtemp(prefix="ttg-rerun-"))
    result = execute_notebook(
        {
            "key": f"rerun-{run_id}",
            "parameters": parameters,
            "template": str(TEMPLATE),
            "output": str(folder / f"rerun-{run_id}.ipynb"),
            "db_url": lab.config.db_url,
            "user": lab.user.username,
            "reports_dir": str(folder),
        }
    )
    if result["status"] != "done":
        raise RunStateError(f"the rerun of run {run_id} failed: {result['error']}")
    new_id = int(result["result"]["run_id"])
    old = run.ledger()[REPRODUCED_COLUMNS].reset_index(drop=True)
    new = lab.run(new_id).ledger()[REPRODUCED_COLUMNS].reset_index(drop=True)
    return {"run_id": new_id, "identical": bool(old.equals(new)), "output": result["output"]}
