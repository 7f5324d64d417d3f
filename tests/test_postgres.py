"""The same code on a real PostgreSQL server: migrations, data load and runs.

Needs ``TTG_LAB_TEST_PG_URL`` (``.ci/run`` starts a server and sets it). Skipped
locally without it; in CI (``CI=true``) a missing server is a failure, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from ttg_lab.lab import Lab, open_lab
from ttg_lab.store.database import Store, include_name
from ttg_lab.store.schema import Base

PG_URL = os.environ.get("TTG_LAB_TEST_PG_URL", "")

if not PG_URL:
    if os.environ.get("CI"):
        raise RuntimeError("CI must provide TTG_LAB_TEST_PG_URL (see .ci/run)")
    pytest.skip("set TTG_LAB_TEST_PG_URL to run the PostgreSQL tests", allow_module_level=True)


def reset(url: str) -> None:
    store = Store(url)
    with store.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    store.dispose()


@pytest.fixture(scope="module")
def pg_lab() -> Iterator[Lab]:
    reset(PG_URL)
    lab = open_lab(PG_URL)
    yield lab
    lab.close()


def test_migrations_match_the_models(pg_lab: Lab) -> None:
    with pg_lab.store.engine.connect() as conn:
        assert (
            compare_metadata(
                MigrationContext.configure(conn, opts={"include_name": include_name}), Base.metadata
            )
            == []
        )


def test_runs_on_postgres_equal_runs_on_sqlite(pg_lab: Lab, lab: Lab) -> None:
    columns = [
        "step_index",
        "ts",
        "action",
        "symbol",
        "quantity",
        "fill_price",
        "fees",
        "cash_after",
        "holdings",
        "order_id",
        "status",
        "reason",
    ]
    results = []
    for target in (pg_lab, lab):
        model = target.models.create(
            f"pg mom {len(results)}", ai_model_id="baseline/momentum", initial_cash=100_000.0
        )
        run = target.start_run(model, costs="default")
        assert run.wait(120) == "completed"
        results.append(run)
    pd.testing.assert_frame_equal(results[0].ledger()[columns], results[1].ledger()[columns])
    assert results[0].info()["final_value"] == results[1].info()["final_value"]


def test_run_numbers_and_cascade_delete_on_postgres(pg_lab: Lab) -> None:
    model = pg_lab.models.create("pg cash", ai_model_id="baseline/cash")
    for expected in (1, 2):
        run = pg_lab.start_run(model, start="2025-06-10", end="2025-06-13", background=False)
        assert run.info()["run_number"] == expected
    pg_lab.models.delete(model)
    assert pg_lab.runs("pg-mom-0")["run_number"].tolist() == [1]
