"""run metrics

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 02:42:39.883247
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('trading_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), server_default='{}', nullable=False))



def downgrade() -> None:
    # plain DROP COLUMN: SQLite's batch mode would copy, drop and rename trading_runs,
    # and dropping it cascades to every step, ledger row and call of every run
    op.drop_column('trading_runs', 'metrics')

