"""Migrations build exactly the schema the ORM declares, from empty and step by step."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from ttg_lab.store.database import Store, alembic_config, include_name, migrate
from ttg_lab.store.schema import Base


def schema_diff(store: Store) -> list[object]:
    with store.engine.connect() as conn:
        return list(
            compare_metadata(
                MigrationContext.configure(conn, opts={"include_name": include_name}), Base.metadata
            )
        )


def test_migrations_from_empty_match_the_models(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    store.migrate()
    assert schema_diff(store) == []
    store.migrate()  # idempotent
    assert schema_diff(store) == []


def test_every_revision_upgrades_from_the_previous_one_with_data(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'b.db'}")
    revisions = [
        r.revision
        for r in ScriptDirectory.from_config(alembic_config(store.engine)).walk_revisions()
    ]
    revisions.reverse()
    assert revisions[0] == "0001"
    migrate(store.engine, revisions[0])
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (email, display_name, role, approved, created_at) "
                "VALUES ('old@x', 'Old', 'admin', 1, '2025-01-01')"
            )
        )
    for revision in revisions[1:]:
        migrate(store.engine, revision)
    assert schema_diff(store) == []
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT email FROM users")).scalar() == "old@x"
    assert "llm_calls" in inspect(store.engine).get_table_names()
