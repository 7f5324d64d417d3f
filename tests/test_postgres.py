"""The same run gives the same ledger on PostgreSQL and on SQLite, and PostgreSQL's
run numbering and cascading deletes behave. (Every store test also runs on both
databases through the ``db_url`` fixture; this file compares the two directly.)"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from support.pg import fresh_database

import ttg_lab
from ttg_lab.engine.ledger import REPRODUCED_COLUMNS
from ttg_lab.lab import Lab


@pytest.fixture()
def pg_lab() -> Iterator[Lab]:
    with fresh_database() as url:
        lab = ttg_lab.open(url)
        yield lab
        lab.close()


def test_runs_on_postgres_equal_runs_on_sqlite(pg_lab: Lab, sqlite_url: str) -> None:
    sqlite_lab = ttg_lab.open(sqlite_url)
    results = []
    for target in (pg_lab, sqlite_lab):
        model = target.models.create(
            "same momentum", ai_model_id="baseline/momentum", initial_cash=100_000.0
        )
        run = target.start_run(model, costs="default", background=False)
        assert run.status == "completed"
        results.append(run)
    ledgers = [r.ledger()[[*REPRODUCED_COLUMNS, "order_id"]] for r in results]
    pd.testing.assert_frame_equal(ledgers[0], ledgers[1])
    assert results[0].info.final_value == results[1].info.final_value
    sqlite_lab.close()


def test_run_numbers_and_cascade_delete_on_postgres(pg_lab: Lab) -> None:
    kept = pg_lab.models.create("pg kept", ai_model_id="baseline/cash")
    pg_lab.start_run(kept, start="2025-06-10", end="2025-06-13", background=False)
    model = pg_lab.models.create("pg cash", ai_model_id="baseline/cash")
    for expected in (1, 2):
        run = pg_lab.start_run(model, start="2025-06-10", end="2025-06-13", background=False)
        assert run.info.run_number == expected
    pg_lab.models.delete(model)
    assert "pg-cash" not in set(pg_lab.runs().table()["model"])
    assert pg_lab.runs("pg-kept").table()["run_number"].tolist() == [1]
