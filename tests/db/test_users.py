"""Users: argon2id passwords, roles, disabling, the last-admin guard and the first-admin setup token."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, inspect, select

from ember.db import Database
from ember.db import users as u
from ember.db.tables import UserRow
from ember.errors import InvalidName, InvalidPassword, InvalidRole, LastAdmin, UserExists, UserNotFound

PASSWORD = "correct horse battery"


def test_create_and_authenticate(db: Database) -> None:
    created = u.create_user(db, "alice", PASSWORD)
    assert (created.name, created.role, created.disabled) == ("alice", "user", False)
    assert u.authenticate_user(db, "alice", PASSWORD) == created
    assert u.authenticate_user(db, "alice", PASSWORD + "x") is None
    assert u.authenticate_user(db, "nobody", PASSWORD) is None
    assert u.get_user(db, "alice") == created and u.get_user(db, "nobody") is None


def test_password_is_stored_as_an_argon2id_hash(db: Database) -> None:
    u.create_user(db, "alice", PASSWORD)
    with db.reading() as session:
        stored = session.scalar(select(UserRow.password_hash).where(UserRow.name == "alice"))
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored


def test_duplicate_name_is_a_conflict(db: Database) -> None:
    u.create_user(db, "alice", PASSWORD)
    with pytest.raises(UserExists):
        u.create_user(db, "alice", "another password")


@pytest.mark.parametrize("name", ["", " alice", "alice ", "a\nb", "a\x00b", "x" * 65])
def test_bad_names_are_refused(db: Database, name: str) -> None:
    with pytest.raises(InvalidName):
        u.create_user(db, name, PASSWORD)


def test_sql_looking_names_are_stored_as_data(db: Database) -> None:
    names = ["robert'); DROP TABLE users;--", "x' OR '1'='1", 'a"; DELETE FROM api_keys; --', "ünïcødé 名前"]
    for name in names:
        u.create_user(db, name, PASSWORD)
    assert sorted(user.name for user in u.list_users(db)) == sorted(names)
    assert u.authenticate_user(db, "x' OR '1'='1", "wrong password") is None
    assert u.get_user(db, "' OR 1=1 --") is None
    assert "users" in inspect(db.engine).get_table_names()


def test_role_and_password_rules(db: Database) -> None:
    with pytest.raises(InvalidRole):
        u.create_user(db, "alice", PASSWORD, role="root")
    with pytest.raises(InvalidPassword):
        u.create_user(db, "alice", "short")
    assert u.list_users(db) == []


def test_set_role_disable_enable_and_passwd(db: Database) -> None:
    u.create_user(db, "root", PASSWORD, role="admin")
    u.create_user(db, "bob", PASSWORD, role="pending")
    assert u.set_role(db, "bob", "user").role == "user"
    assert u.set_disabled(db, "bob", True).disabled
    assert u.authenticate_user(db, "bob", PASSWORD) is None
    assert not u.set_disabled(db, "bob", False).disabled
    u.set_password(db, "bob", "a new password")
    assert u.authenticate_user(db, "bob", PASSWORD) is None
    assert u.authenticate_user(db, "bob", "a new password") is not None
    with pytest.raises(UserNotFound):
        u.set_role(db, "ghost", "user")
    with pytest.raises(InvalidRole):
        u.set_role(db, "bob", "superuser")


def test_the_last_enabled_admin_cannot_be_demoted_or_disabled(db: Database) -> None:
    u.create_user(db, "root", PASSWORD, role="admin")
    with pytest.raises(LastAdmin):
        u.set_role(db, "root", "user")
    with pytest.raises(LastAdmin):
        u.set_disabled(db, "root", True)
    u.create_user(db, "second", PASSWORD, role="admin")
    assert u.set_role(db, "root", "user").role == "user"
    assert u.admin_exists(db)


def test_setup_token_works_once_and_only_while_no_admin_exists(db: Database) -> None:
    assert not u.admin_exists(db)
    token = u.create_setup_token(db)
    assert not u.consume_setup_token(db, "wrong" + token)
    assert u.consume_setup_token(db, token)
    assert not u.consume_setup_token(db, token)
    fresh = u.create_setup_token(db)
    u.create_user(db, "root", PASSWORD, role="admin")
    assert not u.consume_setup_token(db, fresh)


def test_expired_setup_token_is_refused_and_later_cleared(db: Database) -> None:
    token = u.create_setup_token(db, ttl=timedelta(seconds=-1))
    assert not u.consume_setup_token(db, token)
    fresh = u.create_setup_token(db)
    with db.reading() as session:
        from ember.db.tables import SetupTokenRow

        assert session.scalar(select(func.count()).select_from(SetupTokenRow)) == 1
    assert u.consume_setup_token(db, fresh)


def test_setup_token_is_stored_hashed(db: Database) -> None:
    token = u.create_setup_token(db)
    with db.reading() as session:
        from ember.db.tables import SetupTokenRow

        stored = session.scalars(select(SetupTokenRow.token_hash)).all()
    assert len(stored) == 1 and token not in stored[0]


def test_create_first_admin_spends_the_token_only_on_success(db: Database) -> None:
    token = u.create_setup_token(db)
    with pytest.raises(InvalidPassword):
        u.create_first_admin(db, token, "root", "short")
    admin = u.create_first_admin(db, token, "root", PASSWORD)
    assert admin is not None and admin.role == "admin"
    assert u.create_first_admin(db, token, "root2", PASSWORD) is None


def test_racing_setup_tokens_create_exactly_one_admin(db_url: str, db: Database) -> None:
    tokens = [u.create_setup_token(db) for _ in range(4)]
    results: list[object] = []
    barrier = threading.Barrier(len(tokens))

    def claim(index: int) -> None:
        mine = Database.open(db_url)
        try:
            barrier.wait()
            results.append(u.create_first_admin(mine, tokens[index], f"admin{index}", PASSWORD))
        except Exception as exc:
            results.append(exc)
        finally:
            mine.close()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(tokens))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [r for r in results if isinstance(r, u.User)]
    assert len(results) == len(tokens) and len(winners) == 1, results
    assert [user.name for user in u.list_users(db)] == [winners[0].name]
