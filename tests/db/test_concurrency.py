"""Many threads on one database at once, as the gateway's worker threads use it: no "database is locked",
no lost writes, reads alongside writes."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from ember.db import Database
from ember.db.audit import AuditEvent, query_audit, record_audit_many
from ember.db.keys import create_key, find_key
from ember.db.tables import UserRow
from ember.db.users import create_user, get_user, set_role

THREADS = 8
ROUNDS = 20


def test_writers_and_readers_in_parallel(db_url: str, db: Database) -> None:
    create_user(db, "alice", "correct horse battery")
    _, secret = create_key(db, name="k", user_name="alice", scopes=["chat"])
    other = Database.open(db_url)  # a second engine, like a second web replica
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def work(index: int) -> None:
        target = db if index % 2 else other
        try:
            barrier.wait()
            for round_ in range(ROUNDS):
                assert find_key(target, secret) is not None
                record_audit_many(target, [AuditEvent(
                    time=datetime.now(UTC), request_id=f"{index}-{round_}-{n}", user_name="alice", key_name="k",
                    client=None, method="POST", route="/api/chat", model="m", status=200) for n in range(3)])
                set_role(target, "alice", "user")  # read, then write, in one transaction
                assert get_user(target, "alice") is not None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    other.close()
    assert errors == []
    rows = query_audit(db, limit=10_000)
    assert len(rows) == THREADS * ROUNDS * 3
    assert len({row.request_id for row in rows}) == len(rows)


def test_sqlite_write_sessions_take_the_write_lock_when_they_begin(tmp_path: Path) -> None:
    """A write session that reads first must not find, when it comes to write, that another writer changed the
    snapshot it read (SQLite answers that with an immediate "database is locked"); so it locks at BEGIN."""
    path = tmp_path / "ember.db"
    db = Database.open(f"sqlite:///{path}")
    db.migrate()
    create_user(db, "alice", "correct horse battery")
    outsider = sqlite3.connect(path, timeout=0, isolation_level=None)
    with db.session() as session:
        session.scalar(select(UserRow.role))  # the first statement begins the transaction
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            outsider.execute("UPDATE users SET role = 'pending'")
    with db.reading() as session:
        session.scalar(select(UserRow.role))  # a read session does not block writers
        outsider.execute("UPDATE users SET role = 'pending'")
    outsider.close()
    db.close()
