"""The store: schema, sessions and migrations, who may see what (access), runs' leases and
LLM usage accounting."""

from ttg_lab.store.database import Store, make_engine, migrate

__all__ = ["Store", "make_engine", "migrate"]
