"""Shared fixtures: a lab on a fresh store holding the shipped market data.

Every test that takes ``db_url`` (or ``lab``) runs twice: on SQLite and on the
PostgreSQL server named by ``TTG_LAB_TEST_PG_URL`` (skipped without one, an error
under CI). The store is built once per session per backend, then copied for each test:
a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.pg import create_database, drop_database, fresh_database, require_pg

import ttg_lab
from ttg_lab.lab import Lab
from ttg_lab.market import loader
from ttg_lab.store.database import Store

pytest_plugins = ["support.fixtures"]

ONLINE_KEYS = (
    "ALPHAADVANTAGE_API_KEY",
    "ALPHA_VANTAGE_API_KEY",
    "JINA_API_KEY",
    "OPENROUTER_API_KEY",
)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches an online provider, even on a machine where keys are set."""
    for name in ONLINE_KEYS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def private_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Service pid files and logs go to the test's own folder, never the clone's data/."""
    monkeypatch.setenv("TTG_LAB_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(autouse=True)
def local_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Labs act as the local admin unless a test names a user."""
    for name in ("JUPYTERHUB_USER", "TTG_LAB_USER"):
        monkeypatch.delenv(name, raising=False)


BACKENDS = ("sqlite", "postgresql")


def _load_market_data(url: str) -> None:
    from ttg_lab.config import resolve_settings

    store = Store(url)
    try:
        store.migrate()
        loader.load_shipped(store, resolve_settings().data_dir)
    finally:
        store.dispose()


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite store with all shipped datasets loaded."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    _load_market_data(f"sqlite:///{path}")
    store = Store(f"sqlite:///{path}")
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.dispose()
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """Name of a PostgreSQL database with the schema and shipped market data."""
    require_pg()
    name = f"ttg_template_{os.getpid()}"
    drop_database(name)
    _load_market_data(create_database(name))
    yield name
    drop_database(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database a test runs on: each store test runs on both."""
    return str(request.param)


@pytest.fixture()
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a private copy of the template store on ``backend``."""
    if backend == "postgresql":
        with fresh_database(template=request.getfixturevalue("pg_template")) as url:
            yield url
        return
    target = tmp_path / "lab.db"
    shutil.copy(request.getfixturevalue("template_db"), target)
    yield f"sqlite:///{target}"


@pytest.fixture()
def empty_db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database on ``backend`` (no schema yet)."""
    if backend == "postgresql":
        with fresh_database() as url:
            yield url
        return
    yield f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture()
def sqlite_url(template_db: Path, tmp_path: Path) -> str:
    """URL of a private SQLite copy, for tests of SQLite itself (files, WAL, locks)."""
    target = tmp_path / "lab.db"
    shutil.copy(template_db, target)
    return f"sqlite:///{target}"


@pytest.fixture()
def lab(db_url: str) -> Iterator[Lab]:
    lab = ttg_lab.open(db_url)
    yield lab
    lab.close()
