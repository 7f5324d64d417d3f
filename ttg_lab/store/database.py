"""Engine, sessions, migrations and retries for the store.

SQLite gets WAL mode, foreign keys and a busy timeout so a run thread and a reader
(notebook, dashboard) can share the file; PostgreSQL uses the same code path.

A transaction that fails for a passing reason (a locked SQLite file, a dropped server
connection) can be run again with :func:`retrying`. Two environment variables tune this:

``TTG_LAB_DB_BUSY_TIMEOUT``
    Seconds a SQLite statement waits for another connection's lock (default 30).
``TTG_LAB_DB_RETRIES``
    How many times :func:`retrying` runs a transaction again (default 5), waiting 0.1 s,
    0.2 s, 0.4 s ... (at most 2 s) in between.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ttg_lab.errors import ConfigError, TTGLabError

if TYPE_CHECKING:  # alembic loads only when a store needs migrating (see migrate)
    from alembic.config import Config

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_ENV = "TTG_LAB_DB_BUSY_TIMEOUT"
RETRIES_ENV = "TTG_LAB_DB_RETRIES"
TRANSIENT_MESSAGES = (
    "database is locked",
    "database table is locked",
    "deadlock detected",
    "could not serialize access",
    "terminating connection",
    "server closed the connection",
    "connection is closed",
    "connection refused",
    "could not connect",
)
"""Fragments of driver messages that mean: the same transaction may well succeed later."""

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

SEARCH_INDEXES = ("reasoning_fts", "ix_reasoning_content_fts")
"""Full-text search structures created by raw SQL in migrations, not by the ORM."""


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Schema comparison skips the full-text search tables and index (and FTS5's own)."""
    return not (name and name.startswith(SEARCH_INDEXES))


def env_number(name: str, default: float) -> float:
    """A non-negative number from environment variable ``name`` (``default`` when unset)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value


def busy_timeout() -> float:
    """Seconds a SQLite statement waits for a lock (``TTG_LAB_DB_BUSY_TIMEOUT``)."""
    return env_number(BUSY_TIMEOUT_ENV, 30.0)


def _sqlite_pragmas(timeout: float, dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; creates the SQLite file's folder when needed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        timeout = busy_timeout()
        engine = create_engine(url, connect_args={"timeout": timeout, "check_same_thread": False})
        event.listen(engine, "connect", partial(_sqlite_pragmas, timeout))
        return engine
    return create_engine(url, pool_pre_ping=True)


class DatabaseUnavailableError(TTGLabError):
    """The database stayed locked or unreachable for the whole retry budget."""


def is_transient(error: BaseException) -> bool:
    """A dropped connection, a lock or a serialization conflict: worth trying again."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if not isinstance(error, OperationalError):
        return False
    text = str(error.orig).lower()
    return any(fragment in text for fragment in TRANSIENT_MESSAGES)


def retrying(fn: Callable[[], T], what: str, database: str = "the database") -> T:
    """``fn()`` (one whole transaction), run again after transient errors with a growing
    pause, up to ``TTG_LAB_DB_RETRIES`` times; then a :class:`DatabaseUnavailableError`
    naming ``what`` and ``database``. Other errors pass through at once."""
    retries = int(env_number(RETRIES_ENV, 5))
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return fn()
        except DBAPIError as exc:
            if not is_transient(exc):
                raise
            attempt += 1
            reason = str(exc.orig or exc).strip().splitlines()[0]
            if attempt > retries:
                raise DatabaseUnavailableError(
                    f"{database}: {what} gave up after {attempt} attempts in "
                    f"{time.monotonic() - started:.1f} s: {reason}"
                ) from exc
            pause = min(0.1 * 2 ** (attempt - 1), 2.0)
            log.warning("%s: %s failed (%s); retry in %.1f s", database, what, reason, pause)
            time.sleep(pause)


def alembic_config(engine: Engine) -> Config:
    """An Alembic config that points at the package's migrations and this engine."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


REVISION_LINE = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
DOWN_REVISION_LINE = re.compile(r"^down_revision\s*(?::[^=]*)?=(.*)$", re.MULTILINE)


@cache
def head_revisions(versions: Path = MIGRATIONS_DIR / "versions") -> frozenset[str]:
    """The head revision(s) of the migrations in ``versions``, read from their
    ``revision`` and ``down_revision`` lines: the revisions no other one builds on. Cheap,
    so opening a store that is up to date never imports Alembic (about 0.15 s)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted(versions.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        revision = REVISION_LINE.search(source)
        down = DOWN_REVISION_LINE.search(source)
        if revision is None or down is None:
            raise ConfigError(f"migration {path.name} declares no revision or down_revision")
        revisions.add(revision.group(1))
        parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return frozenset(revisions - parents)


def current_revisions(engine: Engine) -> frozenset[str]:
    """The revision(s) the store's schema is at (none before its first migration)."""
    if not inspect(engine).has_table("alembic_version"):
        return frozenset()
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT version_num FROM alembic_version"))
        return frozenset(str(version) for (version,) in rows)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (idempotent). A store already at the head is
    left alone without loading Alembic: every open checks, few opens migrate."""
    if revision == "head" and current_revisions(engine) == head_revisions():
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


class Store:
    """The database a lab talks to: an engine and a session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def name(self) -> str:
        """The URL without its password, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def retrying(self, fn: Callable[[], T], what: str) -> T:
        """:func:`retrying` on this store: ``fn`` should open its own session."""
        return retrying(fn, what, f"database {self.name}")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def migrate(self) -> None:
        migrate(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
