"""Full-text index over reasoning entries (FTS5 on SQLite, GIN tsvector on PostgreSQL)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SQLITE_UP = [
    "CREATE VIRTUAL TABLE reasoning_fts USING fts5(content, content='reasoning_entries', "
    "content_rowid='id', tokenize='unicode61')",
    "CREATE TRIGGER reasoning_fts_insert AFTER INSERT ON reasoning_entries BEGIN "
    "INSERT INTO reasoning_fts(rowid, content) VALUES (new.id, new.content); END",
    "CREATE TRIGGER reasoning_fts_delete AFTER DELETE ON reasoning_entries BEGIN "
    "INSERT INTO reasoning_fts(reasoning_fts, rowid, content) VALUES ('delete', old.id, old.content); END",
    "CREATE TRIGGER reasoning_fts_update AFTER UPDATE OF content ON reasoning_entries BEGIN "
    "INSERT INTO reasoning_fts(reasoning_fts, rowid, content) VALUES ('delete', old.id, old.content); "
    "INSERT INTO reasoning_fts(rowid, content) VALUES (new.id, new.content); END",
    "INSERT INTO reasoning_fts(reasoning_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS reasoning_fts_update",
    "DROP TRIGGER IF EXISTS reasoning_fts_delete",
    "DROP TRIGGER IF EXISTS reasoning_fts_insert",
    "DROP TABLE IF EXISTS reasoning_fts",
]
POSTGRES_UP = [
    "CREATE INDEX ix_reasoning_content_fts ON reasoning_entries "
    "USING gin (to_tsvector('simple', content))",
]
POSTGRES_DOWN = ["DROP INDEX IF EXISTS ix_reasoning_content_fts"]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _run(SQLITE_UP)
    elif dialect == "postgresql":
        _run(POSTGRES_UP)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _run(SQLITE_DOWN)
    elif dialect == "postgresql":
        _run(POSTGRES_DOWN)
