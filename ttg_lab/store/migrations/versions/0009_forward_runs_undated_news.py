"""Forward runs, the bars each step saw, skipped steps, and undated news

``trading_runs.forward`` marks a run that trades forward on the wall clock (the only
runs guaranteed to come after every model's training cutoff). ``run_steps.data_seen``
is the hash of the bars a step could see when it was decided, so a forward run resumed
later can prove the bars before it are unchanged; ``run_steps.skipped`` marks a step a
forward run missed while it was down and recorded without a decision. Every existing
run is a backtest and every existing step was decided: nothing else changes.

``news_items.published_at`` may be NULL: an item fetched without a publish time is
stored (nothing fetched is lost) but never served. SQLite changes the column's
nullability by copying the table (``news_items`` has no dependents); columns are
dropped with plain ``ALTER TABLE ... DROP COLUMN``, since SQLite's batch mode on
``trading_runs``/``run_steps`` would cascade-delete what hangs off them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "trading_runs",
        sa.Column("forward", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("run_steps", sa.Column("data_seen", sa.String(length=64), nullable=True))
    op.add_column(
        "run_steps",
        sa.Column("skipped", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    with op.batch_alter_table("news_items") as batch:
        batch.alter_column("published_at", existing_type=sa.DateTime(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM news_items WHERE published_at IS NULL")  # they were never served
    with op.batch_alter_table("news_items") as batch:
        batch.alter_column("published_at", existing_type=sa.DateTime(), nullable=False)
    op.drop_column("run_steps", "skipped")
    op.drop_column("run_steps", "data_seen")
    op.drop_column("trading_runs", "forward")
