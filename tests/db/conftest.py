"""The database suite runs twice: on SQLite in a temporary directory, and on the machine's PostgreSQL
(a freshly created database per test; see tests/postgres_fixture.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ember.db import Database
from tests.postgres_fixture import postgres_url  # noqa: F401 - the fixture is used by name

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'ember.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def empty_db(db_url: str) -> Iterator[Database]:
    """An open database with no tables yet."""
    db = Database.open(db_url)
    yield db
    db.close()


@pytest.fixture
def db(empty_db: Database) -> Database:
    """A migrated database."""
    empty_db.migrate()
    return empty_db
