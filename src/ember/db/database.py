"""Database: one engine per process, sessions that commit or roll back, and SQLite set up for concurrent use.

SQLite (the default, ``EMBER_HOME/ember.db``; set up in ember.db.sqlite) runs in WAL mode, and write
sessions start with ``BEGIN IMMEDIATE``: a transaction that reads and then writes takes the write lock up
front, so two writers queue on the busy timeout instead of one failing with "database is locked".
PostgreSQL is reached through psycopg 3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.util.exc import CommandError
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from ember.db.sqlite import BEGIN_OPTION, sqlite_engine
from ember.errors import BadRequest, DatabaseUnavailable

CONNECT_TIMEOUT_S = 10


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = sessionmaker(engine.execution_options(**{BEGIN_OPTION: "BEGIN IMMEDIATE"}),
                                    expire_on_commit=False)
        self._reader = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> Database:
        """Connect to ``url`` (``sqlite:///path``, ``postgresql[+psycopg]://...``); nothing is created yet."""
        parsed = normalize_url(url)
        if parsed.get_backend_name() == "sqlite":
            try:
                return cls(sqlite_engine(parsed))
            except OSError as exc:  # the directory could not be created
                raise DatabaseUnavailable(f"cannot create the database directory: {exc}") from exc
        return cls(create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def sqlite_path(self) -> Path | None:
        """The database file, for SQLite on disk; None otherwise."""
        if self.dialect != "sqlite":
            return None
        database = self.engine.url.database
        return Path(database) if database and database != ":memory:" else None

    def migrate(self) -> None:
        """Upgrade the schema to the newest revision; safe when several processes start at once."""
        from ember.db.migrate import upgrade

        try:
            upgrade(self.engine, "head")
        except DBAPIError as exc:  # unreachable server, refused login, a file that is not a database
            raise DatabaseUnavailable(f"cannot open the database {self.display_url}: {_first_line(exc)}") from exc
        except CommandError as exc:  # typically: the schema is at a revision a newer Ember wrote
            raise DatabaseUnavailable(f"cannot migrate the database {self.display_url}: {exc} "
                                      "(is a newer version of Ember using it?)") from exc

    @property
    def display_url(self) -> str:
        """The URL without its password, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction: commits on success, rolls back on error."""
        with self._writer.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read transaction (on SQLite a deferred BEGIN that does not block writers)."""
        with self._reader.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def normalize_url(url: str) -> URL:
    """Parse a database URL; plain ``postgresql://`` and ``postgres://`` mean psycopg 3."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError, but a malformed port is a ValueError
        raise BadRequest(f"invalid database URL: {_redacted(url)}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise BadRequest(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")
    return parsed


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}...{rest.rpartition('@')[2]}" if "@" in rest else url
