"""The store: SQLAlchemy schema, engine/session handling and Alembic migrations."""

from ttg_lab.store.database import Store, make_engine, migrate

__all__ = ["Store", "make_engine", "migrate"]
