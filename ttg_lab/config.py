"""Where things live: database URL, data and report folders.

Settings come from arguments first, then environment variables, then defaults that
point into the clone (``data/ttg_lab.db``), so a fresh checkout works with no setup.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The clone's top folder (holds ``data/`` and ``reports/``)."""

DB_URL_ENV = "TTG_LAB_DB_URL"
DATA_DIR_ENV = "TTG_LAB_DATA_DIR"
REPORTS_DIR_ENV = "TTG_LAB_REPORTS_DIR"
STATE_DIR_ENV = "TTG_LAB_STATE_DIR"


def _default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, PROJECT_ROOT / "data"))


def _default_reports_dir() -> Path:
    return Path(os.environ.get(REPORTS_DIR_ENV, PROJECT_ROOT / "reports"))


@dataclass(frozen=True)
class Settings:
    """Resolved locations for one lab."""

    db_url: str
    data_dir: Path = field(default_factory=_default_data_dir)
    reports_dir: Path = field(default_factory=_default_reports_dir)
    state_dir: Path = field(
        default_factory=lambda: Path(os.environ.get(STATE_DIR_ENV, _default_data_dir()))
    )
    """Where running services keep their pid file and logs."""

    @property
    def shipped_market_dir(self) -> Path:
        """Folder of the compact market-data files that ship with the repo."""
        return self.data_dir / "market"


def resolve_settings(db_url: str | None = None) -> Settings:
    """Settings from an explicit URL, else ``TTG_LAB_DB_URL``, else the SQLite default."""
    data_dir = _default_data_dir()
    url = db_url or os.environ.get(DB_URL_ENV) or f"sqlite:///{data_dir / 'ttg_lab.db'}"
    return Settings(db_url=url, data_dir=data_dir)
