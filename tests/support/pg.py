"""Throw-away PostgreSQL databases on the server named by ``TTG_LAB_TEST_PG_URL``.

``.ci/run`` installs and starts that server; locally the PostgreSQL tests are skipped
without it, and in CI (``CI=true``) a missing server is an error, not a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("TTG_LAB_TEST_PG_URL", "")


def require_pg() -> str:
    """The server URL; skips the calling test without one (fails under CI)."""
    import pytest

    if not PG_URL:
        if os.environ.get("CI"):
            raise RuntimeError("CI must provide TTG_LAB_TEST_PG_URL (see .ci/run)")
        pytest.skip("set TTG_LAB_TEST_PG_URL to run the PostgreSQL tests")
    return PG_URL


def _admin_engine() -> Engine:
    return create_engine(
        make_url(require_pg()).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )


def create_database(name: str, template: str | None = None) -> str:
    """Create database ``name`` (optionally a copy of ``template``); returns its URL."""
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            clause = f' TEMPLATE "{template}"' if template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
    finally:
        engine.dispose()
    return make_url(require_pg()).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    """Drop database ``name``, closing any connections still open on it."""
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@contextmanager
def fresh_database(template: str | None = None, prefix: str = "ttg_t") -> Iterator[str]:
    """A new empty database (or a copy of ``template``) dropped afterwards; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = create_database(name, template)
    try:
        yield url
    finally:
        drop_database(name)
