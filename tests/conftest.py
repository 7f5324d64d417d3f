"""Shared fixtures: a lab on a fresh SQLite store holding the shipped market data.

Building that store takes a second or two, so it is built once per test session and
copied for each test that needs one.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ttg_lab.lab import Lab, open_lab
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


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite store with all shipped datasets loaded."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    from ttg_lab.config import resolve_settings

    loader.load_shipped(store, resolve_settings().data_dir)
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.dispose()
    return path


@pytest.fixture()
def db_url(template_db: Path, tmp_path: Path) -> str:
    """URL of a private copy of the template store."""
    target = tmp_path / "lab.db"
    shutil.copy(template_db, target)
    return f"sqlite:///{target}"


@pytest.fixture()
def lab(db_url: str) -> Iterator[Lab]:
    lab = open_lab(db_url)
    yield lab
    lab.close()
