"""Migrations build exactly the schema the ORM declares, from empty and step by step,
on SQLite and on PostgreSQL, keeping the data they find."""

from __future__ import annotations

from alembic import command
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


def test_migrations_from_empty_match_the_models(empty_db_url: str) -> None:
    store = Store(empty_db_url)
    store.migrate()
    assert schema_diff(store) == []
    store.migrate()  # idempotent
    assert schema_diff(store) == []


def test_every_revision_upgrades_from_the_previous_one_with_data(empty_db_url: str) -> None:
    store = Store(empty_db_url)
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
                "VALUES ('old@x', 'Old', 'admin', :yes, '2025-01-01')"
            ),
            {"yes": True},
        )
    for revision in revisions[1:]:
        migrate(store.engine, revision)
    assert schema_diff(store) == []
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT email, username FROM users")).one() == ("old@x", "old")
    assert "llm_calls" in inspect(store.engine).get_table_names()
    # the latest revision goes down and up again without losing the rows it kept
    command.downgrade(alembic_config(store.engine), revisions[-2])
    migrate(store.engine, "head")
    assert schema_diff(store) == []
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT email, username FROM users")).one() == ("old@x", "old")
    store.dispose()
