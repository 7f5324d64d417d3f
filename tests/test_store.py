"""Migrations build exactly the schema the ORM declares, from empty and step by step,
on SQLite and on PostgreSQL, keeping the data they find."""

from __future__ import annotations

from datetime import datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from ttg_lab.store.database import Store, alembic_config, include_name, migrate
from ttg_lab.store.schema import (
    Base,
    ExperimentRow,
    LedgerEntry,
    RunStep,
    TradingModel,
    TradingRun,
    User,
)


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


def test_going_down_revision_by_revision_keeps_the_rows_of_every_table_kept(
    empty_db_url: str,
) -> None:
    """Down to 0001 one revision at a time, a run's row, its step and its ledger row stay
    (SQLite's batch mode once rebuilt trading_runs, which cascade-deleted them)."""
    store = Store(empty_db_url)
    store.migrate()
    with store.session() as session:
        user = User(email="old@x", username="old", display_name="Old")
        session.add(user)
        session.flush()
        model = TradingModel(
            owner_id=user.id,
            name="m",
            signature="m",
            market="us",
            initial_cash=1.0,
            ai_model_id="baseline/cash",
        )
        session.add(model)
        session.flush()
        day = datetime(2025, 6, 10)
        run = TradingRun(
            model_id=model.id,
            run_number=1,
            status="completed",
            mode="daily",
            period_start=day,
            period_end=day,
        )
        session.add(run)
        session.flush()
        session.add(RunStep(run_id=run.id, step_index=0, ts=day, cash=1.0, equity=1.0))
        session.add(
            LedgerEntry(
                run_id=run.id,
                step_index=0,
                ts=day,
                action="no_trade",
                cash_after=1.0,
                order_id="s0-none",
                status="none",
            )
        )
    revisions = [
        r.revision
        for r in ScriptDirectory.from_config(alembic_config(store.engine)).walk_revisions()
    ]
    for revision in revisions[1:]:  # newest first, down to the first one
        command.downgrade(alembic_config(store.engine), revision)
        with store.engine.connect() as conn:
            for table in ("trading_runs", "run_steps", "ledger"):
                count = conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                assert count == 1, (revision, table)
    store.dispose()


def test_0007_splits_the_llm_usage_of_existing_runs_into_used_and_wasted(
    empty_db_url: str,
) -> None:
    """A run stored before 0007 (step 1 lost once and done again by attempt 1, step 2
    in flight): its steps get the attempt that answered them, its totals count only
    their calls and the rest becomes wasted; going down restores the old totals and
    keeps every step, ledger row and call; going up again splits them the same way."""
    store = Store(empty_db_url)
    migrate(store.engine, "0006")
    calls = [  # step, attempt, status, prompt tokens, completion tokens, cost
        (0, 0, "ok", 100, 10, 0.5),
        (0, 0, "ok", 200, 20, 1.0),
        (1, 0, "ok", 300, 30, 2.0),  # lost in a crash
        (1, 1, "error", 0, 0, 0.0),  # retried within the step that committed
        (1, 1, "ok", 400, 40, 4.0),
        (2, 1, "ok", 500, 50, 8.0),  # in flight when the run stopped
    ]
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, email, username, display_name, role, approved, "
                "created_at) VALUES (1, 'old@x', 'old', 'Old', 'admin', :yes, '2025-01-01')"
            ),
            {"yes": True},
        )
        conn.execute(
            text(
                "INSERT INTO models (id, owner_id, name, signature, description, active, shared,"
                " market, initial_cash, tickers, ai_model_id, parameters, custom_rules, "
                "custom_instructions, created_at, updated_at) VALUES (1, 1, 'm', 'm', '', :yes,"
                " :no, 'us', 1000, '[]', 'openai/gpt-5', '{}', '', '', '2025-01-01', "
                "'2025-01-01')"
            ),
            {"yes": True, "no": False},
        )
        conn.execute(
            text(
                "INSERT INTO trading_runs (id, model_id, run_number, status, mode, period_start,"
                " period_end, started_at, strategy_snapshot, steps_total, steps_done, "
                "total_trades, attempt, llm_calls, prompt_tokens, completion_tokens, llm_cost,"
                " metrics) VALUES (1, 1, 1, 'stopped', 'daily', '2025-06-10', '2025-06-12', "
                "'2025-01-01', '{}', 3, 2, 0, 1, 6, 1500, 150, 15.5, '{}')"
            )
        )
        for step in (0, 1):
            conn.execute(
                text(
                    "INSERT INTO run_steps (run_id, step_index, ts, cash, equity, holdings, "
                    "risk_state) VALUES (1, :step, '2025-06-10', 1000, 1000, '{}', '{}')"
                ),
                {"step": step},
            )
            conn.execute(
                text(
                    "INSERT INTO ledger (run_id, step_index, ts, action, quantity, fees, "
                    "cash_after, holdings, order_id, status, reason) VALUES (1, :step, "
                    "'2025-06-10', 'no_trade', 0, 0, 1000, '{}', :order, 'none', '')"
                ),
                {"step": step, "order": f"s{step}-none"},
            )
        for n, (step, attempt, status, prompt, completion, cost) in enumerate(calls):
            conn.execute(
                text(
                    "INSERT INTO llm_calls (run_id, step_index, attempt, call_index, ai_model_id,"
                    " request_fingerprint, request, response, tool_calls, prompt_tokens, "
                    "completion_tokens, latency_ms, cost, status, created_at) VALUES (1, :step,"
                    " :attempt, :n, 'openai/gpt-5', 'f', '{}', '{}', '[]', :prompt, :completion,"
                    " 1, :cost, :status, '2025-01-01')"
                ),
                dict(
                    step=step,
                    attempt=attempt,
                    n=n,
                    prompt=prompt,
                    completion=completion,
                    cost=cost,
                    status=status,
                ),
            )

    def usage() -> tuple[object, ...]:
        with store.engine.connect() as conn:
            return tuple(
                conn.execute(
                    text(
                        "SELECT llm_calls, prompt_tokens, completion_tokens, llm_cost, "
                        "wasted_llm_calls, wasted_prompt_tokens, wasted_completion_tokens, "
                        "wasted_llm_cost FROM trading_runs"
                    )
                ).one()
            )

    def kept() -> tuple[int, int, int]:
        with store.engine.connect() as conn:
            return tuple(  # type: ignore[return-value]
                conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                for table in ("run_steps", "ledger", "llm_calls")
            )

    split = (4, 700, 70, 5.5, 2, 800, 80, 10.0)
    migrate(store.engine, "0007")
    assert usage() == split and kept() == (2, 2, 6)
    with store.engine.connect() as conn:
        attempts = conn.execute(text("SELECT attempt FROM run_steps ORDER BY step_index")).all()
    assert [a for (a,) in attempts] == [0, 1]

    command.downgrade(alembic_config(store.engine), "0006")
    with store.engine.connect() as conn:
        old = conn.execute(
            text("SELECT llm_calls, prompt_tokens, completion_tokens, llm_cost FROM trading_runs")
        ).one()
    assert tuple(old) == (6, 1500, 150, 15.5) and kept() == (2, 2, 6)
    migrate(store.engine, "head")
    assert schema_diff(store) == []
    assert usage() == split and kept() == (2, 2, 6)
    store.dispose()


def test_0008_keeps_every_run_going_down_and_up_again(empty_db_url: str) -> None:
    """A store with an experiment goes down to 0007 and up again: its runs, their steps
    and ledgers stay (runs of no experiment then), and the experiments table comes back
    empty and usable."""
    store = Store(empty_db_url)
    store.migrate()
    day = datetime(2025, 6, 10)
    with store.session() as session:
        user = User(email="old@x", username="old", display_name="Old")
        session.add(user)
        session.flush()
        model = TradingModel(
            owner_id=user.id,
            name="m",
            signature="m",
            market="us",
            initial_cash=1.0,
            ai_model_id="baseline/cash",
        )
        session.add(model)
        session.flush()
        experiment = ExperimentRow(
            owner_id=user.id,
            model_id=model.id,
            repeats=2,
            mode="daily",
            period_start=day,
            period_end=day,
            seed=0,
            options={},
        )
        session.add(experiment)
        session.flush()
        for number in (1, 2):
            run = TradingRun(
                model_id=model.id,
                run_number=number,
                status="completed",
                mode="daily",
                period_start=day,
                period_end=day,
                experiment_id=experiment.id,
            )
            session.add(run)
            session.flush()
            session.add(RunStep(run_id=run.id, step_index=0, ts=day, cash=1.0, equity=1.0))

    def kept() -> tuple[int, int]:
        with store.engine.connect() as conn:
            return (
                conn.execute(text("SELECT COUNT(*) FROM trading_runs")).scalar_one(),
                conn.execute(text("SELECT COUNT(*) FROM run_steps")).scalar_one(),
            )

    command.downgrade(alembic_config(store.engine), "0007")
    assert kept() == (2, 2)
    assert "experiments" not in inspect(store.engine).get_table_names()
    migrate(store.engine, "head")
    assert schema_diff(store) == [] and kept() == (2, 2)
    with store.engine.connect() as conn:
        grouped = conn.execute(text("SELECT experiment_id FROM trading_runs")).scalars().all()
        assert grouped == [None, None]
        assert conn.execute(text("SELECT COUNT(*) FROM experiments")).scalar_one() == 0
    store.dispose()
