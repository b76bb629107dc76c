"""The database suite runs twice: on SQLite in a temporary directory, and on the machine's PostgreSQL.

Each PostgreSQL test gets its own freshly created database (``ember_test_<random>``), dropped afterwards.
EMBER_TEST_POSTGRES_URL names the server and a database to connect to for that (default: the local `test`).
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from ember.db import Database

ADMIN_URL = os.environ.get("EMBER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


@functools.cache
def postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        import psycopg

        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: skip, and say why
        return f"PostgreSQL at {make_url(ADMIN_URL).render_as_string(hide_password=True)} unreachable: {exc}"


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]  # names are generated here, never user input


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test."""
    reason = postgres_unreachable()
    if reason:
        pytest.skip(reason)
    name = f"ember_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(ADMIN_URL).set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False)
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
