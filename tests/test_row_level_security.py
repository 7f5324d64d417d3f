"""PostgreSQL row-level security: a user's own database login cannot read or change
another user's work even with raw SQL, and the lab works on that login."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from support.pg import require_pg

import ttg_lab
from ttg_lab.errors import ConfigError, ValidationError
from ttg_lab.lab import Lab

PERIOD = {"start": "2025-06-10", "end": "2025-06-20"}
PRIVATE = (
    "models",
    "trading_runs",
    "run_steps",
    "ledger",
    "agent_logs",
    "reasoning_entries",
    "gate_decisions",
)


def psql(url: str) -> psycopg.Connection:
    """A plain DB-API connection, as a notebook would open one."""
    parsed = make_url(url)
    return psycopg.connect(
        host=parsed.host,
        port=parsed.port,
        dbname=parsed.database,
        user=parsed.username,
        password=parsed.password,
        autocommit=True,
    )


@pytest.fixture()
def logins(lab: Lab, backend: str) -> Iterator[dict[str, str]]:
    """alice and bob with a run each and their own database logins (URLs)."""
    if backend != "postgresql":
        pytest.skip("row-level security is a PostgreSQL feature")
    require_pg()
    tag = uuid.uuid4().hex[:6]
    urls = {}
    for name in ("alice", "bob"):
        user = lab.users.add(f"{name}.{tag}@team.org", name.title(), username=f"{name}{tag}")
        owner = ttg_lab.open(lab.config.db_url, user=user.username)
        model = owner.models.create(f"{name} momentum", ai_model_id="baseline/momentum")
        owner.start_run(model, path="direct", background=False, **PERIOD)
        owner.rules.add(model, "cap", {"max_position_pct": 50})
        owner.close()
        urls[name] = lab.users.db_login(user.username or "", f"pw-{name}-{tag}")
    yield urls
    lab.store.dispose()
    engine = create_engine(lab.config.db_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP OWNED BY ttg_alice{tag}, ttg_bob{tag}"))
        conn.execute(text(f"DROP ROLE ttg_alice{tag}, ttg_bob{tag}"))
    engine.dispose()


def counts(conn: psycopg.Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in PRIVATE}  # type: ignore[index]


def test_raw_sql_on_a_users_login_sees_only_their_work(lab: Lab, logins: dict[str, str]) -> None:
    total = counts(psql(lab.config.db_url))  # the lab's own connection owns the tables
    with psql(logins["alice"]) as alice:
        mine = counts(alice)
        assert mine["models"] == 1 and mine["trading_runs"] == 1
        assert all(0 < mine[t] < total[t] for t in ("run_steps", "ledger", "reasoning_entries"))
        names = alice.execute("SELECT name FROM models").fetchall()
        assert names == [("alice momentum",)]
        bob_run = psql(logins["bob"]).execute("SELECT id FROM trading_runs").fetchone()[0]  # type: ignore[index]
        assert alice.execute("SELECT * FROM ledger WHERE run_id = %s", (bob_run,)).fetchall() == []
        # writes to bob's rows change nothing; rows claiming to be bob's are refused
        changed = alice.execute(
            "UPDATE trading_runs SET status = 'failed' WHERE id = %s", (bob_run,)
        ).rowcount
        assert changed == 0
        assert alice.execute("DELETE FROM models WHERE name = 'bob momentum'").rowcount == 0
        bob_id = (
            lab.users.list()
            .set_index("username")
            .loc[
                make_url(logins["bob"]).username.removeprefix("ttg_"), "id"  # type: ignore[union-attr]
            ]
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            alice.execute(
                "INSERT INTO models (owner_id, name, signature, description, active, market, "
                "initial_cash, tickers, ai_model_id, parameters, custom_rules, "
                "custom_instructions, created_at, updated_at) VALUES (%s, 'x', 'x', '', true, "
                "'us', 1, '[]', 'baseline/cash', '{}', '', '', now(), now())",
                (int(bob_id),),
            )
        # shared market data is readable, not writable; users and settings are not hers
        assert alice.execute("SELECT count(*) FROM stock_prices").fetchone()[0] > 0  # type: ignore[index]
        assert alice.execute("DELETE FROM stock_prices").rowcount == 0
        assert alice.execute("SELECT count(*) FROM users").fetchone()[0] == 1  # type: ignore[index]
        assert alice.execute("UPDATE users SET role = 'admin'").rowcount == 0
        assert alice.execute("UPDATE global_settings SET value = '1'").rowcount == 0
    assert counts(psql(lab.config.db_url)) == total
    assert set(lab.users.list()["role"]) == {"admin", "user"}
    assert lab.users.me()["admin"] and lab.users.list()["role"].tolist().count("admin") == 1


def test_the_lab_works_on_a_users_own_login(lab: Lab, logins: dict[str, str]) -> None:
    alice = ttg_lab.open(logins["alice"])  # the login says who she is
    assert alice.user.username is not None and alice.user.username.startswith("alice")
    assert list(alice.runs().table()["model"]) == ["alice-momentum"]
    run = alice.start_run("alice momentum", path="direct", background=False, **PERIOD)
    assert run.status == "completed" and len(alice.runs()) == 2
    assert list(alice.leaderboard()["model"]) == ["alice-momentum"]
    alice.close()
    with pytest.raises(ConfigError, match="belongs to alice"):
        ttg_lab.open(logins["alice"], user=make_url(logins["bob"]).username.removeprefix("ttg_"))  # type: ignore[union-attr]


def test_database_logins_are_for_admins_on_postgresql(lab: Lab, logins: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="at least 8 characters"):
        lab.users.db_login("local", "short")


def test_shared_models_are_readable_not_writable_with_raw_sql(
    lab: Lab, logins: dict[str, str]
) -> None:
    house = lab.models.create("house cash", ai_model_id="baseline/cash")
    run = lab.start_run(house, path="direct", background=False, **PERIOD)
    with psql(logins["alice"]) as alice:
        assert alice.execute(
            "SELECT count(*) FROM ledger WHERE run_id = %s", (run.id,)
        ).fetchone() == (0,)
        lab.models.share(house)
        rows = alice.execute("SELECT count(*) FROM ledger WHERE run_id = %s", (run.id,)).fetchone()
        assert rows == (len(run.ledger()),)
        assert (
            alice.execute("UPDATE models SET name = 'mine' WHERE id = %s", (house.id,)).rowcount
            == 0
        )
        assert alice.execute("DELETE FROM ledger WHERE run_id = %s", (run.id,)).rowcount == 0
        assert (
            alice.execute("UPDATE trading_runs SET status = 'x' WHERE id = %s", (run.id,)).rowcount
            == 0
        )
    assert lab.run(run.id).status == "completed" and lab.models.get(house.id).name == "house cash"


def test_a_users_experiments_are_theirs_alone_even_with_raw_sql(
    lab: Lab, logins: dict[str, str]
) -> None:
    alice = ttg_lab.open(logins["alice"])  # the lab on her own login writes her experiment
    try:
        experiment = alice.start_run(
            "alice momentum", path="direct", repeats=2, background=False, **PERIOD
        )
        assert experiment.status == "completed"
        assert [e.id for e in alice.experiments()] == [experiment.id]
    finally:
        alice.close()
    with psql(lab.config.db_url) as conn:  # the lab's own connection sees every row
        owner, model = conn.execute(
            "SELECT owner_id, model_id FROM experiments WHERE id = %s", (experiment.id,)
        ).fetchone()  # type: ignore[misc]
    with psql(logins["alice"]) as own:
        assert own.execute("SELECT id FROM experiments").fetchall() == [(experiment.id,)]
    with psql(logins["bob"]) as bob:
        assert bob.execute("SELECT count(*) FROM experiments").fetchone() == (0,)
        assert bob.execute("UPDATE experiments SET repeats = 9").rowcount == 0
        assert bob.execute("DELETE FROM experiments").rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # one claiming to be hers
            bob.execute(
                "INSERT INTO experiments (owner_id, model_id, name, repeats, mode, "
                "period_start, period_end, seed, options, created_at) VALUES (%s, %s, 'x', 1, "
                "'daily', now(), now(), 0, '{}', now())",
                (owner, model),
            )
    assert lab.experiment(experiment.id).info.repeats == 2
