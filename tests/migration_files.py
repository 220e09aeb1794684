"""A migration file loaded as a module, for tests that run its fill or backfill SQL against rows the test wrote
(a summary table's fill, a new column's backfill) and compare with what the code keeps."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa

from evalhub.extensions import db

VERSIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"


def load(filename: str) -> ModuleType:
    path = VERSIONS / filename
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def refill(filename: str, summary: type) -> None:
    """Empty a summary table and fill it again with the migration's ``FILL_SQL``, as an upgrade fills it."""
    db.session.execute(sa.delete(summary))
    db.session.execute(sa.text(load(filename).FILL_SQL))
