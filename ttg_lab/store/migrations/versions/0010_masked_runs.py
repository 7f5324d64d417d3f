"""Masked runs

``trading_runs.masked`` marks a run whose model saw masked symbols, prices and dates
(see :mod:`ttg_lab.market.masking`); the run's snapshot holds the mask's seed. Every
existing run was unmasked.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "trading_runs",
        sa.Column("masked", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("trading_runs", "masked")  # plain DROP COLUMN: see 0009 on SQLite batches
