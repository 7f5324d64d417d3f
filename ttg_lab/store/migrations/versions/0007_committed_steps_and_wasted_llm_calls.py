"""Which attempt committed each step, and the LLM calls a run wasted

``run_steps.attempt`` records the claim (the run's attempt) that committed a step: the
LLM calls of that attempt are the step's. Calls of other attempts (steps lost in a
crash, a failure or a takeover) are the run's wasted spend, kept apart in
``trading_runs.wasted_*``, so ``llm_calls`` / ``llm_cost`` are what the committed steps
used. Existing steps get the last attempt that answered them (what replay used so far),
and existing runs' totals are split accordingly; going down adds the wasted calls back.
Columns are dropped with plain ``ALTER TABLE ... DROP COLUMN``: SQLite's batch
(copy-and-rename) mode would cascade-delete every step, ledger row and call of a run.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WASTED = {
    "wasted_llm_calls": sa.Integer(),
    "wasted_prompt_tokens": sa.BigInteger(),
    "wasted_completion_tokens": sa.BigInteger(),
    "wasted_llm_cost": sa.Float(),
}
LAST_ANSWERED = (
    "UPDATE run_steps SET attempt = COALESCE((SELECT MAX(c.attempt) FROM llm_calls c "
    "WHERE c.run_id = run_steps.run_id AND c.step_index = run_steps.step_index "
    "AND c.status <> 'error'), 0)"
)
"""Each existing step: the last attempt that answered it (what replay used so far)."""
SPLIT_TOTALS = """
UPDATE trading_runs SET
  llm_calls = (SELECT COUNT(*) FROM llm_calls c WHERE c.run_id = trading_runs.id AND EXISTS (
    SELECT 1 FROM run_steps s WHERE s.run_id = c.run_id AND s.step_index = c.step_index
    AND s.attempt = c.attempt)),
  prompt_tokens = (SELECT COALESCE(SUM(c.prompt_tokens), 0) FROM llm_calls c
    WHERE c.run_id = trading_runs.id AND EXISTS (
    SELECT 1 FROM run_steps s WHERE s.run_id = c.run_id AND s.step_index = c.step_index
    AND s.attempt = c.attempt)),
  completion_tokens = (SELECT COALESCE(SUM(c.completion_tokens), 0) FROM llm_calls c
    WHERE c.run_id = trading_runs.id AND EXISTS (
    SELECT 1 FROM run_steps s WHERE s.run_id = c.run_id AND s.step_index = c.step_index
    AND s.attempt = c.attempt)),
  llm_cost = (SELECT COALESCE(SUM(c.cost), 0) FROM llm_calls c
    WHERE c.run_id = trading_runs.id AND EXISTS (
    SELECT 1 FROM run_steps s WHERE s.run_id = c.run_id AND s.step_index = c.step_index
    AND s.attempt = c.attempt)),
  wasted_llm_calls = (SELECT COUNT(*) FROM llm_calls c
    WHERE c.run_id = trading_runs.id AND NOT EXISTS (
    SELECT 1 FROM run_steps s WHERE s.run_id = c.run_id AND s.step_index = c.step_index
    AND s.attempt = c.attempt)),
  wasted_prompt_tokens = (SELECT COALESCE(SUM(c.prompt_tokens), 0) FROM llm_calls c
    WHERE c.run_id = trading_runs.id AND NOT EXISTS (
    SELECT 1 FROM run_steps s WHERE s.run_id = c.run_id AND s.step_index = c.step_index
    AND s.attempt = c.attempt)),
  wasted_completion_tokens = (SELECT COALESCE(SUM(c.completion_tokens), 0) FROM llm_calls c
    WHERE c.run_id = trading_runs.id AND NOT EXISTS (
    SELECT 1 FROM run_steps s WHERE s.run_id = c.run_id AND s.step_index = c.step_index
    AND s.attempt = c.attempt)),
  wasted_llm_cost = (SELECT COALESCE(SUM(c.cost), 0) FROM llm_calls c
    WHERE c.run_id = trading_runs.id AND NOT EXISTS (
    SELECT 1 FROM run_steps s WHERE s.run_id = c.run_id AND s.step_index = c.step_index
    AND s.attempt = c.attempt))
WHERE EXISTS (SELECT 1 FROM llm_calls c WHERE c.run_id = trading_runs.id)
"""
"""Every run with recorded calls: usage of its committed steps, and the rest as wasted."""
ADD_BACK = (
    "UPDATE trading_runs SET llm_calls = llm_calls + wasted_llm_calls, "
    "prompt_tokens = prompt_tokens + wasted_prompt_tokens, "
    "completion_tokens = completion_tokens + wasted_completion_tokens, "
    "llm_cost = llm_cost + wasted_llm_cost"
)
"""Before 0007 a run's totals counted every call."""


def upgrade() -> None:
    op.add_column(
        "run_steps", sa.Column("attempt", sa.Integer(), server_default="0", nullable=False)
    )
    for column, type_ in WASTED.items():
        op.add_column("trading_runs", sa.Column(column, type_, server_default="0", nullable=False))
    op.execute(LAST_ANSWERED)
    op.execute(SPLIT_TOTALS)


def downgrade() -> None:
    op.execute(ADD_BACK)
    for column in WASTED:
        op.drop_column("trading_runs", column)
    op.drop_column("run_steps", "attempt")
