"""A fresh PostgreSQL database per test on the machine's server, dropped afterwards.

EMBER_TEST_POSTGRES_URL names the server and a database to connect to for CREATE/DROP DATABASE (default:
the local `test` database as `postgres`). Tests skip, saying why, only when that server cannot be reached.
Use it from a test module with ``from tests.postgres_fixture import postgres_url``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get("EMBER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        import psycopg

        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: skip, and say why
        shown = make_url(ADMIN_URL).render_as_string(hide_password=True)
        return f"PostgreSQL at {shown} unreachable (set EMBER_TEST_POSTGRES_URL): {exc}"


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]  # names are generated here, never user input


@contextlib.contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty PostgreSQL database, dropped afterwards; skips when unreachable."""
    reason = postgres_unreachable()
    if reason:
        pytest.skip(reason)
    name = f"ember_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty PostgreSQL database for one test."""
    with fresh_postgres_database() as url:
        yield url
