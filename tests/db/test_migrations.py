"""Migrations: from an empty database, every step up and down, and many processes migrating at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from ember.db import Database, migrate
from ember.db.tables import Base, UserRow
from ember.errors import BadRequest, DatabaseUnavailable

TABLES = {"users", "api_keys", "setup_tokens", "audit_events", "model_policies", "web_sessions", "app_settings",
          "chats", "messages", "documents", "chunks"}
# The tables each revision adds: the step test checks that each step does exactly this.
ADDED_BY = {
    "0001_accounts": {"users", "api_keys", "setup_tokens"},
    "0002_audit": {"audit_events"},
    "0003_model_policies": {"model_policies"},
    "0004_web": {"web_sessions", "app_settings", "chats", "messages", "documents", "chunks"},
}


def _tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_migrate_from_empty_creates_every_table_at_head(empty_db: Database) -> None:
    assert _tables(empty_db) == set() and migrate.current(empty_db.engine) is None
    empty_db.migrate()
    assert _tables(empty_db) == TABLES
    assert migrate.current(empty_db.engine) == migrate.head()


def test_migrated_schema_matches_the_orm_tables(db: Database) -> None:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrate_twice_is_a_no_op(db: Database) -> None:
    with db.session() as session:
        session.add(UserRow(name="kept", password_hash="x", role="user", disabled=False))
    db.migrate()
    with db.reading() as session:
        assert session.scalars(select(UserRow.name)).all() == ["kept"]


def test_every_revision_is_known_to_the_test() -> None:
    assert migrate.revisions() == list(ADDED_BY)


def test_each_step_up_then_down_to_base_and_up_again(empty_db: Database) -> None:
    expected: set[str] = set()
    for revision in migrate.revisions():
        migrate.upgrade(empty_db.engine, revision)
        expected |= ADDED_BY[revision]
        assert migrate.current(empty_db.engine) == revision
        assert _tables(empty_db) == expected
    for revision in reversed(migrate.revisions()[:-1]):
        migrate.downgrade(empty_db.engine, revision)
        assert migrate.current(empty_db.engine) == revision
    migrate.downgrade(empty_db.engine, "base")
    assert _tables(empty_db) == set() and migrate.current(empty_db.engine) is None
    empty_db.migrate()
    assert _tables(empty_db) == TABLES


def test_upgrade_keeps_rows_written_at_an_older_revision(empty_db: Database) -> None:
    first = migrate.revisions()[0]
    migrate.upgrade(empty_db.engine, first)
    with empty_db.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (name, password_hash, role, disabled, created_at, updated_at) "
                          "VALUES ('old', 'h', 'admin', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    empty_db.migrate()
    from ember.db.users import get_user

    user = get_user(empty_db, "old")
    assert user is not None and user.role == "admin" and user.created_at.tzinfo is not None


def _migrate_at(url: str, start_at: float) -> str | None:
    """Run in a child process: wait for the common start, migrate, report the revision."""
    db = Database.open(url)
    time.sleep(max(0.0, start_at - time.time()))
    db.migrate()
    revision = migrate.current(db.engine)
    db.close()
    return revision


def test_concurrent_migrate_from_several_processes(db_url: str) -> None:
    workers = 4
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        start_at = time.time() + 3.0  # spawned interpreters need a moment to import
        results = list(pool.map(_migrate_at, [db_url] * workers, [start_at] * workers))
    assert results == [migrate.head()] * workers
    db = Database.open(db_url)
    assert _tables(db) == TABLES
    db.close()


def test_concurrent_migrate_from_several_threads(db_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        db = Database.open(db_url)  # one engine each, like separate replicas
        try:
            barrier.wait()
            db.migrate()
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    db = Database.open(db_url)
    assert migrate.current(db.engine) == migrate.head()
    db.close()


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "ember.db"
    db = Database.open(f"sqlite:///{path}")
    db.migrate()
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    db.close()
    assert path.exists()
    with sqlite3.connect(path) as raw:  # WAL is a property of the file, seen by any client
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_enforces_foreign_keys(tmp_path: Path) -> None:
    from sqlalchemy.exc import IntegrityError

    db = Database.open(f"sqlite:///{tmp_path / 'ember.db'}")
    db.migrate()
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text("INSERT INTO api_keys (name, user_id, secret_hash, hint, scopes, created_at) "
                          "VALUES ('k', 999, 'h', 'x', 'chat', CURRENT_TIMESTAMP)"))
    db.close()


def test_plain_postgresql_urls_use_psycopg_3() -> None:
    assert migrate_url("postgresql://u@h/db") == "postgresql+psycopg"
    assert migrate_url("postgres://u@h/db") == "postgresql+psycopg"
    assert migrate_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg"


def migrate_url(url: str) -> str:
    from ember.db.database import normalize_url

    return normalize_url(url).drivername


@pytest.mark.parametrize("url", ["not a url", "mysql://u@h/db", "postgresql://u@h:notaport/db"])
def test_bad_database_urls_are_clear_errors(url: str) -> None:
    with pytest.raises(BadRequest):
        Database.open(url)


def test_bad_url_error_hides_the_password() -> None:
    with pytest.raises(BadRequest) as info:
        Database.open("postgresql://u:hunter2@h:notaport/db")
    assert "hunter2" not in str(info.value)


def test_a_schema_from_a_newer_ember_is_a_clear_error(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(DatabaseUnavailable, match="newer version of Ember"):
        db.migrate()


def test_an_unreachable_server_is_a_clear_error() -> None:
    db = Database.open("postgresql://postgres@127.0.0.1:1/nothing")
    with pytest.raises(DatabaseUnavailable, match="cannot open the database"):
        db.migrate()
    db.close()


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ember.db"
    path.write_bytes(b"this is not an SQLite database, just some text that fills a page. " * 100)
    db = Database.open(f"sqlite:///{path}")
    with pytest.raises(DatabaseUnavailable, match="not a database"):
        db.migrate()
    db.close()


def test_a_database_path_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatabaseUnavailable, match="directory"):
        Database.open(f"sqlite:///{tmp_path / 'file' / 'ember.db'}")
