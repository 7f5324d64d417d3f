"""Login names, sign-up allow-list, shared models, and row-level security on PostgreSQL

Users get a login ``username`` (backfilled from the email) and an optional PostgreSQL
``db_role``; models get ``shared`` (read-only for everyone; the imported AI-Trader runs
are shared). On PostgreSQL every table holding a user's work gets row-level security:
a connection made as a user's role changes only that user's models, runs and everything
under them, and reads those plus shared models' (admins: everything); market data is
read-only to them. The lab's own connection owns the tables and is not subject to it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ME = "ttg_session_user_id()"
ADMIN = "ttg_session_is_admin()"
OWNED_MODELS = f"SELECT id FROM models WHERE owner_id = {ME} OR {ADMIN}"
OWNED_RUNS = f"SELECT id FROM trading_runs WHERE model_id IN ({OWNED_MODELS})"
VISIBLE_RUNS = "run_id IN (SELECT id FROM trading_runs)"  # RLS on trading_runs applies
FUNCTIONS = [
    # SECURITY DEFINER so the lookup can read ``users``; session_user is the login role.
    "CREATE OR REPLACE FUNCTION ttg_session_user_id() RETURNS bigint LANGUAGE sql STABLE "
    "SECURITY DEFINER SET search_path = public, pg_temp AS "
    "$$ SELECT id FROM users WHERE db_role = session_user AND approved $$",
    "CREATE OR REPLACE FUNCTION ttg_session_is_admin() RETURNS boolean LANGUAGE sql STABLE "
    "SECURITY DEFINER SET search_path = public, pg_temp AS "
    "$$ SELECT EXISTS (SELECT 1 FROM users WHERE db_role = session_user AND approved "
    "AND role = 'admin') $$",
]
OWNED = {
    "models": f"owner_id = {ME} OR {ADMIN}",
    "trading_runs": f"model_id IN ({OWNED_MODELS})",
    "run_steps": f"run_id IN ({OWNED_RUNS})",
    "ledger": f"run_id IN ({OWNED_RUNS})",
    "agent_logs": f"run_id IN ({OWNED_RUNS})",
    "reasoning_entries": f"run_id IN ({OWNED_RUNS})",
    "gate_decisions": f"run_id IN ({OWNED_RUNS})",
    "model_rules": f"model_id IN ({OWNED_MODELS})",
    "user_trading_profiles": f"user_id = {ME} OR {ADMIN}",
    "chat_sessions": f"user_id = {ME} OR {ADMIN}",
    "chat_messages": "session_id IN (SELECT id FROM chat_sessions)",
    "llm_calls": f"run_id IN ({OWNED_RUNS}) OR chat_session_id IN (SELECT id FROM chat_sessions)",
}
"""Tables a user writes (and reads) only where the condition holds."""
SHARED_READ = {
    "models": "shared",
    "trading_runs": "model_id IN (SELECT id FROM models)",
    "run_steps": VISIBLE_RUNS,
    "ledger": VISIBLE_RUNS,
    "agent_logs": VISIBLE_RUNS,
    "reasoning_entries": VISIBLE_RUNS,
    "gate_decisions": VISIBLE_RUNS,
    "model_rules": "model_id IN (SELECT id FROM models)",
    "llm_calls": VISIBLE_RUNS,
}
"""What a user may also read: shared models and everything under them."""
SHARED = ("stock_prices", "datasets", "news_items", "global_settings")
"""Tables everyone reads and only admins change."""


def _policies() -> list[str]:
    statements = list(FUNCTIONS)
    for table, condition in OWNED.items():
        statements += [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"CREATE POLICY {table}_owner ON {table} FOR ALL "
            f"USING ({condition}) WITH CHECK ({condition})",
        ]
    for table, condition in SHARED_READ.items():
        statements.append(f"CREATE POLICY {table}_shared ON {table} FOR SELECT USING ({condition})")
    for table in SHARED:
        statements += [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"CREATE POLICY {table}_read ON {table} FOR SELECT USING (true)",
            f"CREATE POLICY {table}_admin ON {table} FOR ALL USING ({ADMIN}) WITH CHECK ({ADMIN})",
        ]
    statements += [
        "ALTER TABLE users ENABLE ROW LEVEL SECURITY",
        f"CREATE POLICY users_self ON users FOR SELECT USING (id = {ME})",
        f"CREATE POLICY users_admin ON users FOR ALL USING ({ADMIN}) WITH CHECK ({ADMIN})",
        "ALTER TABLE signup_allowlist ENABLE ROW LEVEL SECURITY",
        f"CREATE POLICY signup_allowlist_admin ON signup_allowlist FOR ALL "
        f"USING ({ADMIN}) WITH CHECK ({ADMIN})",
    ]
    return statements


def _drop_policies() -> list[str]:
    statements = []
    for table in SHARED_READ:
        statements.append(f"DROP POLICY IF EXISTS {table}_shared ON {table}")
    for table in OWNED:
        statements += [
            f"DROP POLICY IF EXISTS {table}_owner ON {table}",
            f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
        ]
    for table in SHARED:
        statements += [
            f"DROP POLICY IF EXISTS {table}_read ON {table}",
            f"DROP POLICY IF EXISTS {table}_admin ON {table}",
            f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
        ]
    return [
        *statements,
        "DROP POLICY IF EXISTS users_self ON users",
        "DROP POLICY IF EXISTS users_admin ON users",
        "ALTER TABLE users DISABLE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS signup_allowlist_admin ON signup_allowlist",
        "DROP FUNCTION IF EXISTS ttg_session_is_admin()",
        "DROP FUNCTION IF EXISTS ttg_session_user_id()",
    ]


def upgrade() -> None:
    op.add_column(
        "models", sa.Column("shared", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.execute("UPDATE models SET shared = true WHERE signature LIKE 'aitrader-%'")
    op.add_column("users", sa.Column("username", sa.String(length=64), nullable=True))
    op.add_column("users", sa.Column("db_role", sa.String(length=63), nullable=True))
    users = sa.table(
        "users", sa.column("id", sa.Integer), sa.column("email"), sa.column("username")
    )
    bind = op.get_bind()
    taken: set[str] = set()
    for user_id, email in bind.execute(sa.select(users.c.id, users.c.email).order_by(users.c.id)):
        base = "local" if email == "local@ttg-lab" else email.split("@")[0].lower()[:56]
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}{n}"
        taken.add(name)
        bind.execute(users.update().where(users.c.id == user_id).values(username=name))
    op.create_index("ix_users_username", "users", ["username"], unique=True)
    op.create_index("ix_users_db_role", "users", ["db_role"], unique=True)
    op.create_table(
        "signup_allowlist",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pattern", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("added_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["added_by"], ["users.id"], name="fk_signup_allowlist_added_by_users"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_signup_allowlist"),
        sa.UniqueConstraint("pattern", name="uq_signup_allowlist_pattern"),
    )
    if bind.dialect.name == "postgresql":
        for statement in _policies():
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _drop_policies():
            op.execute(statement)
    op.drop_table("signup_allowlist")
    op.drop_index("ix_users_db_role", table_name="users")
    op.drop_index("ix_users_username", table_name="users")
    # Plain DROP COLUMN: a batch rebuild of ``users`` would cascade deletes on SQLite.
    op.drop_column("users", "db_role")
    op.drop_column("users", "username")
    op.drop_column("models", "shared")
