"""A migration file loaded as a module, for tests that run its fill or backfill SQL against rows the test wrote
(a summary table's fill, a new column's backfill) and compare with what the code keeps."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

VERSIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"


def load(filename: str) -> ModuleType:
    path = VERSIONS / filename
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
