"""API keys: the secret is shown once and stored only as a hash; revoked, expired and disabled keys refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text

from ember.db import Database
from ember.db import keys as k
from ember.db.users import create_user, set_disabled, set_role
from ember.errors import BadRequest, InvalidModelName, InvalidScope, KeyExists, KeyNotFound, UserNotFound

NOW = datetime.now(UTC)


@pytest.fixture
def owner(db: Database) -> str:
    create_user(db, "alice", "correct horse battery")
    return "alice"


def test_create_then_find_by_secret(db: Database, owner: str) -> None:
    record, secret = k.create_key(db, name="laptop", user_name=owner, scopes=["chat", "embed"], rpm=60, tpm=1000,
                                  concurrency=2)
    assert secret.startswith(k.KEY_PREFIX) and len(secret) == len(k.KEY_PREFIX) + 43
    assert record.hint.startswith(secret[:len(k.KEY_PREFIX) + k.HINT_CHARS]) and secret not in record.hint
    found = k.find_key(db, secret)
    assert found == record
    assert found.scopes == {"chat", "embed"} and found.models is None
    assert (found.rpm, found.tpm, found.concurrency) == (60, 1000, 2)
    assert found.user_name == owner and found.refusal(NOW) is None


def test_two_keys_have_different_secrets(db: Database, owner: str) -> None:
    _, first = k.create_key(db, name="a", user_name=owner, scopes=["chat"])
    _, second = k.create_key(db, name="b", user_name=owner, scopes=["chat"])
    assert first != second


@pytest.mark.parametrize("secret", ["", "ember_sk_", "sk-" + "a" * 43, "ember_sk_" + "a" * 42, "ember_sk_" + "a" * 44,
                                    "ember_sk_" + "'; DROP TABLE api_keys;--" + "a" * 18, "Bearer x", "é" * 52])
def test_malformed_or_unknown_secrets_find_nothing(db: Database, owner: str, secret: str) -> None:
    k.create_key(db, name="laptop", user_name=owner, scopes=["chat"])
    assert k.find_key(db, secret) is None
    assert k.find_key(db, k.random_secret(k.KEY_PREFIX)) is None


def test_the_secret_is_never_stored_in_plain_text(db: Database, owner: str) -> None:
    _, secret = k.create_key(db, name="laptop", user_name=owner, scopes=["chat"])
    k.revoke_key(db, "laptop")
    body = secret[len(k.KEY_PREFIX):]
    path = db.sqlite_path
    if path is not None:  # grep the database file and its write-ahead log, byte for byte
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        assert any(p.stat().st_size > 0 for p in files)
        for file in files:
            assert body.encode() not in file.read_bytes(), file
    with db.engine.connect() as conn:  # and every text value in every table, on either backend
        for table in inspect(db.engine).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                assert body not in " ".join(map(str, row)), table


def test_revoked_key_is_found_but_refused(db: Database, owner: str) -> None:
    _, secret = k.create_key(db, name="laptop", user_name=owner, scopes=["chat"])
    revoked = k.revoke_key(db, "laptop")
    assert revoked.revoked_at is not None
    found = k.find_key(db, secret)
    assert found is not None and found.refusal(datetime.now(UTC)) == "revoked"
    with pytest.raises(KeyNotFound):
        k.revoke_key(db, "laptop")


def test_a_revoked_keys_name_can_be_reused(db: Database, owner: str) -> None:
    k.create_key(db, name="ci", user_name=owner, scopes=["chat"])
    with pytest.raises(KeyExists):
        k.create_key(db, name="ci", user_name=owner, scopes=["chat"])
    k.revoke_key(db, "ci")
    _, secret = k.create_key(db, name="ci", user_name=owner, scopes=["embed"])
    found = k.find_key(db, secret)
    assert found is not None and found.refusal(datetime.now(UTC)) is None and found.scopes == {"embed"}
    assert [key.revoked_at is None for key in k.list_keys(db)] == [False, True]


def test_expired_key_is_refused(db: Database, owner: str) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    _, secret = k.create_key(db, name="temp", user_name=owner, scopes=["chat"], expires_at=expires)
    found = k.find_key(db, secret)
    assert found is not None and found.expires_at == expires
    assert found.refusal(expires - timedelta(seconds=1)) is None
    assert found.refusal(expires) == "expired"


def test_keys_of_disabled_or_pending_users_are_refused(db: Database, owner: str) -> None:
    _, secret = k.create_key(db, name="laptop", user_name=owner, scopes=["chat"])
    set_disabled(db, owner, True)
    assert k.find_key(db, secret).refusal(NOW) == "user disabled"  # type: ignore[union-attr]
    set_disabled(db, owner, False)
    set_role(db, owner, "pending")
    assert k.find_key(db, secret).refusal(NOW) == "user pending approval"  # type: ignore[union-attr]


def test_model_allow_list_matches_names_as_the_store_does(db: Database, owner: str) -> None:
    record, _ = k.create_key(db, name="one", user_name=owner, scopes=["chat"], models=["smollm2", "gemma3:270m"])
    assert record.models == {"smollm2:latest", "gemma3:270m"}
    assert record.allows_model("smollm2:latest") and record.allows_model("SmolLM2")
    assert record.allows_model("registry.ollama.ai/library/gemma3:270m")
    assert not record.allows_model("gemma3:1b") and not record.allows_model("../etc/passwd")


def test_bad_scopes_models_limits_and_users(db: Database, owner: str) -> None:
    with pytest.raises(InvalidScope):
        k.create_key(db, name="x", user_name=owner, scopes=["chat", "sudo"])
    with pytest.raises(InvalidScope):
        k.create_key(db, name="x", user_name=owner, scopes=[])
    with pytest.raises(InvalidModelName):
        k.create_key(db, name="x", user_name=owner, scopes=["chat"], models=["bad name!"])
    for limit in ({"rpm": 0}, {"tpm": -5}, {"concurrency": True}):
        with pytest.raises(BadRequest):
            k.create_key(db, name="x", user_name=owner, scopes=["chat"], **limit)  # type: ignore[arg-type]
    with pytest.raises(UserNotFound):
        k.create_key(db, name="x", user_name="ghost", scopes=["chat"])
    assert k.list_keys(db) == []


def test_sql_looking_key_names_are_stored_as_data(db: Database, owner: str) -> None:
    name = "k'); DELETE FROM api_keys; --"
    k.create_key(db, name="before", user_name=owner, scopes=["chat"])
    record, secret = k.create_key(db, name=name, user_name=owner, scopes=["chat"])
    assert k.find_key(db, secret) == record
    assert sorted(key.name for key in k.list_keys(db)) == sorted(["before", name])
    assert k.revoke_key(db, name).name == name
    with pytest.raises(KeyNotFound):
        k.revoke_key(db, "' OR '1'='1")


def test_list_keys_by_user(db: Database, owner: str) -> None:
    create_user(db, "bob", "correct horse battery")
    k.create_key(db, name="a", user_name=owner, scopes=["chat"])
    k.create_key(db, name="b", user_name="bob", scopes=["chat"])
    assert [key.name for key in k.list_keys(db, "bob")] == ["b"]
    assert [key.name for key in k.list_keys(db)] == ["a", "b"]
