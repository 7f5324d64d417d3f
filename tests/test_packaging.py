"""What a (non-editable) install of the package holds."""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]
DATA_ONLY = {"ttg_lab.store.migrations", "ttg_lab.store.migrations.versions"}
"""Folders shipped as package data (Alembic reads them as files)."""


def test_every_folder_of_python_modules_is_a_package_an_install_includes() -> None:
    found = set(find_packages(str(ROOT), include=["ttg_lab*"]))
    folders = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "ttg_lab").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    missing = sorted(folders - found - DATA_ONLY)
    assert missing == [], f"left out of a wheel (no __init__.py): {missing}"
