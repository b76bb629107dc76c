"""Run-time settings and web sessions on SQLite and PostgreSQL: JSON values by key, concurrent first writes, and
sessions ended per user (what disable and password reset rely on)."""

from __future__ import annotations

import threading
from datetime import timedelta

from ember.db import Database
from ember.db.app_settings import get_setting, set_setting
from ember.db.sessions import create_session, end_sessions_of, find_session
from ember.db.users import create_user


def test_values_round_trip_as_json_and_defaults_apply_until_set(db: Database) -> None:
    assert get_setting(db, "signup", "approval") == "approval"
    set_setting(db, "signup", "closed")
    assert get_setting(db, "signup", "approval") == "closed"
    set_setting(db, "embed_model", {"name": "all-minilm", "dims": 384})
    assert get_setting(db, "embed_model") == {"name": "all-minilm", "dims": 384}
    set_setting(db, "embed_model", None)
    assert get_setting(db, "embed_model", "fallback") is None  # a stored null is a value, not "unset"


def test_concurrent_first_writes_of_one_key_both_succeed(db: Database) -> None:
    """Two admins saving the settings page at once: neither gets an error, one value wins."""
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def save(value: str) -> None:
        start.wait()
        try:
            set_setting(db, "race", value)
        except BaseException as exc:  # collected and asserted on
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(f"v{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert get_setting(db, "race") in {"v0", "v1", "v2", "v3"}


def test_ending_a_users_sessions_can_keep_the_callers_own(db: Database) -> None:
    alice = create_user(db, "alice", "password-for-tests")
    bob = create_user(db, "bob", "password-for-tests")
    mine, other, bobs = (create_session(db, uid, timedelta(hours=1)) for uid in (alice.id, alice.id, bob.id))
    assert end_sessions_of(db, alice.id, keep_session_id=mine.user.session_id) == 1
    assert find_session(db, mine.token) is not None and find_session(db, other.token) is None
    assert find_session(db, bobs.token) is not None
    assert end_sessions_of(db, alice.id) == 1 and find_session(db, mine.token) is None
