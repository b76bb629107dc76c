"""Alembic, run from code: the migration scripts ship inside the package, so no alembic.ini is needed.

Several web replicas may start at once against one database. Each takes a lock before it looks at the
schema version, so exactly one runs the migrations and the others find the schema current:
PostgreSQL: a transaction-scoped advisory lock (DDL is transactional there, so the version and the tables
change together). SQLite: an exclusive lock on a file next to the database, plus ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from ember.db.sqlite import BEGIN_OPTION

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# A fixed 63-bit number that names "ember schema migration" among advisory locks on a shared server.
_ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"ember.db.migrate").digest()[:8], "big") >> 1


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(rev)s")  # revision ids are named: 0004_what_it_does
    return config


def revisions() -> list[str]:
    """Revision ids from the first to head."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def head() -> str:
    return revisions()[-1]


def current(engine: Engine) -> str | None:
    """The database's revision, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    with _locked(engine) as conn:
        _run(conn, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> None:
    with _locked(engine) as conn:
        _run(conn, lambda config: command.downgrade(config, revision))


def _run(conn: Connection, action: Callable[[Config], None]) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    action(config)


@contextlib.contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that holds the migration lock until it commits."""
    with _file_lock(_sqlite_file(engine)), engine.connect() as raw:
        conn = raw.execution_options(**{BEGIN_OPTION: "BEGIN IMMEDIATE"})
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})
            yield conn


def _sqlite_file(engine: Engine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


@contextlib.contextmanager
def _file_lock(database: Path | None) -> Iterator[None]:
    if database is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # Windows: BEGIN IMMEDIATE alone serialises the migrations
        yield
        return
    with open(database.with_name(database.name + ".migrate.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
