"""Experiments: repeats of a model over one period and mode, grouped

``experiments`` keeps what the repeats share (owner, model, name, how many repeats were
asked for, mode, period, the first seed, options) and ``trading_runs.experiment_id`` says
which experiment a run is a repeat of (NULL for every existing run: nothing else
changes). On PostgreSQL the new table gets row-level security like the user's other
work (migration 0006): a user's own login sees and changes only their own experiments.
The column is dropped with plain ``ALTER TABLE ... DROP COLUMN``: SQLite's batch
(copy-and-rename) mode would cascade-delete every step, ledger row and call of a run.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ADD_COLUMN = {  # Alembic adds no constraint with a column on SQLite: declare it inline
    "sqlite": "ALTER TABLE trading_runs ADD COLUMN experiment_id INTEGER CONSTRAINT "
    "fk_trading_runs_experiment_id_experiments REFERENCES experiments (id)",
    "postgresql": "ALTER TABLE trading_runs ADD COLUMN experiment_id BIGINT CONSTRAINT "
    "fk_trading_runs_experiment_id_experiments REFERENCES experiments (id)",
}
"""``trading_runs.experiment_id`` with its foreign key, per dialect."""
POLICIES = [
    "ALTER TABLE experiments ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY experiments_owner ON experiments FOR ALL "
    "USING (owner_id = ttg_session_user_id() OR ttg_session_is_admin()) "
    "WITH CHECK (owner_id = ttg_session_user_id() OR ttg_session_is_admin())",
]
"""PostgreSQL: on their own login a user sees and changes only their own experiments
(admins: all), like their other work (0006); experiments are never shared."""


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", ID, nullable=False),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("model_id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=False),
        sa.Column("period_end", sa.DateTime(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column(
            "options",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_experiments_owner_id_users"),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name="fk_experiments_model_id_models",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_experiments"),
    )
    op.create_index("ix_experiments_owner_id", "experiments", ["owner_id"])
    op.create_index("ix_experiments_model_id", "experiments", ["model_id"])
    op.execute(ADD_COLUMN[op.get_bind().dialect.name])
    op.create_index("ix_trading_runs_experiment_id", "trading_runs", ["experiment_id"])
    if op.get_bind().dialect.name == "postgresql":
        for statement in POLICIES:
            op.execute(statement)


def downgrade() -> None:
    op.drop_index("ix_trading_runs_experiment_id", table_name="trading_runs")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(
            "fk_trading_runs_experiment_id_experiments", "trading_runs", type_="foreignkey"
        )
    op.drop_column("trading_runs", "experiment_id")
    op.drop_index("ix_experiments_model_id", table_name="experiments")
    op.drop_index("ix_experiments_owner_id", table_name="experiments")
    op.drop_table("experiments")  # its row-level security policy goes with it
