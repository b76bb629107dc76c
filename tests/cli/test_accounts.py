"""`ember users`, `ember keys`, `ember audit` on the host: click's runner, a temporary EMBER_HOME, no server.

The commands open the configured database (EMBER_HOME/ember.db, or EMBER_DATABASE_URL); these tests open the
same one through ember.db afterwards to check what the commands wrote.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ember.cli.main import cli
from ember.config import Settings
from ember.db import Database
from ember.db.audit import AuditEvent, record_audit_many
from ember.db.keys import KEY_PREFIX, find_key, list_keys
from ember.db.users import authenticate_user, get_user
from tests.postgres_fixture import postgres_url  # noqa: F401 - the fixture is used by name

PASSWORD = "correct horse battery"
Invoke = Callable[..., Result]


@pytest.fixture(params=["sqlite", "postgresql"])
def home(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EMBER_HOME", str(tmp_path / "ember-home"))
    if request.param == "postgresql":
        monkeypatch.setenv("EMBER_DATABASE_URL", request.getfixturevalue("postgres_url"))
    else:
        monkeypatch.delenv("EMBER_DATABASE_URL", raising=False)
    return tmp_path / "ember-home"


@pytest.fixture
def ember(home: Path) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def db(ember: Invoke) -> Iterator[Database]:
    """The database the commands use, opened independently of them."""
    database = Database.open(Settings.from_env().database)
    yield database
    database.close()


@pytest.fixture
def admin(ember: Invoke) -> str:
    assert ember("users", "create", "root", "--admin", "--password-stdin", input=PASSWORD + "\n").exit_code == 0
    return "root"


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_bootstrap_the_first_admin_without_a_server(ember: Invoke, home: Path, db: Database) -> None:
    result = ember("users", "create", "root", "--admin", "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0 and "admin" in result.output
    assert PASSWORD not in result.output
    user = authenticate_user(db, "root", PASSWORD)
    assert user is not None and user.role == "admin"
    if db.sqlite_path is not None:
        assert db.sqlite_path == home / "ember.db"


def test_password_prompt_asks_twice_and_hides_input(ember: Invoke, db: Database) -> None:
    result = ember("users", "create", "bob", input=f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output and PASSWORD not in result.output
    assert authenticate_user(db, "bob", PASSWORD) is not None


def test_user_lifecycle(ember: Invoke, admin: str, db: Database) -> None:
    result = ember("users", "create", "bob", "--role", "pending", "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0
    assert ember("users", "set-role", "bob", "user").exit_code == 0
    assert ember("users", "disable", "bob").exit_code == 0
    header, *rows = ember("users", "list").output.splitlines()
    assert header.split() == ["NAME", "ROLE", "STATUS", "CREATED"]
    assert [row.split()[:3] for row in rows] == [["bob", "user", "disabled"], ["root", "admin", "enabled"]]
    assert ember("users", "enable", "bob").exit_code == 0
    assert ember("users", "passwd", "bob", "--password-stdin", input="a brand new password\n").exit_code == 0
    assert authenticate_user(db, "bob", "a brand new password") is not None
    assert authenticate_user(db, "bob", PASSWORD) is None


def test_user_errors_are_one_line_and_exit_1(ember: Invoke, admin: str) -> None:
    assert "already exists" in one_error_line(
        ember("users", "create", "root", "--password-stdin", input=PASSWORD + "\n"))
    assert "not found" in one_error_line(ember("users", "disable", "ghost"))
    assert "not found" in one_error_line(ember("users", "passwd", "ghost", "--password-stdin", input="x" * 9))
    assert "only enabled admin" in one_error_line(ember("users", "set-role", "root", "user"))
    assert "at least" in one_error_line(ember("users", "create", "eve", "--password-stdin", input="short\n"))
    assert "name" in one_error_line(ember("users", "create", " eve", "--password-stdin", input=PASSWORD + "\n"))
    assert ember("users", "set-role", "root", "superuser").exit_code == 2  # click's usage error


def test_sql_looking_user_names_are_data(ember: Invoke, admin: str, db: Database) -> None:
    name = "x'); DROP TABLE users; --"
    assert ember("users", "create", name, "--password-stdin", input=PASSWORD + "\n").exit_code == 0
    assert get_user(db, name) is not None and get_user(db, "root") is not None


def test_key_secret_is_printed_once_on_the_last_line(ember: Invoke, admin: str, db: Database) -> None:
    result = ember("keys", "create", "laptop", "--scope", "chat,embed", "--models", "smollm2:135m,gemma3",
                   "--rpm", "60", "--tpm", "5000", "--concurrency", "2", "--expires", "30d")
    assert result.exit_code == 0, result.output
    secret = result.output.splitlines()[-1]
    assert secret.startswith(KEY_PREFIX) and result.output.count(secret) == 1
    key = find_key(db, secret)
    assert key is not None and key.user_name == admin and key.refusal(datetime.now(UTC)) is None
    assert key.scopes == {"chat", "embed"} and key.models == {"smollm2:135m", "gemma3:latest"}
    assert (key.rpm, key.tpm, key.concurrency) == (60, 5000, 2)
    assert key.expires_at is not None
    assert abs(key.expires_at - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    listing = ember("keys", "list").output
    assert "laptop" in listing and "active" in listing and secret[len(KEY_PREFIX):] not in listing
    assert key.hint in listing


def test_revoke_key(ember: Invoke, admin: str, db: Database) -> None:
    secret = ember("keys", "create", "ci").output.splitlines()[-1]
    assert ember("keys", "revoke", "ci").exit_code == 0
    key = find_key(db, secret)
    assert key is not None and key.refusal(datetime.now(UTC)) == "revoked"
    assert "revoked" in ember("keys", "list").output
    assert "not found" in one_error_line(ember("keys", "revoke", "ci"))


def test_key_owner_defaults_to_the_only_admin(ember: Invoke, db: Database) -> None:
    assert "no admin" in one_error_line(ember("keys", "create", "k"))
    for name in ("first", "second"):
        ember("users", "create", name, "--admin", "--password-stdin", input=PASSWORD + "\n")
    assert "several admins" in one_error_line(ember("keys", "create", "k"))
    assert ember("keys", "create", "k", "--user", "second").exit_code == 0
    assert [(k.name, k.user_name) for k in list_keys(db)] == [("k", "second")]
    assert [k.name for k in list_keys(db, "first")] == []


def test_key_errors_are_one_line_and_exit_1(ember: Invoke, admin: str, db: Database) -> None:
    assert "scope" in one_error_line(ember("keys", "create", "k", "--scope", "chat,root"))
    assert "--expires" in one_error_line(ember("keys", "create", "k", "--expires", "soon"))
    assert "--expires" in one_error_line(ember("keys", "create", "k", "--expires", "0"))
    assert "positive" in one_error_line(ember("keys", "create", "k", "--rpm", "0"))
    assert "not found" in one_error_line(ember("keys", "create", "k", "--user", "ghost"))
    assert "model name" in one_error_line(ember("keys", "create", "k", "--models", "../../etc"))
    ember("keys", "create", "k")
    assert "already exists" in one_error_line(ember("keys", "create", "k"))
    assert len(list_keys(db)) == 1


def _events() -> list[AuditEvent]:
    now = datetime.now(UTC)
    common = {"client": "127.0.0.1", "method": "POST", "node": "http://127.0.0.1:11434"}
    return [
        AuditEvent(time=now - timedelta(hours=3), request_id="r1", user_name="alice", key_name="laptop",
                   route="/api/chat", model="smollm2:135m", status=200, prompt_tokens=10, completion_tokens=5,
                   ttft_ms=12.0, duration_ms=80.0, done_reason="stop", **common),
        AuditEvent(time=now - timedelta(minutes=30), request_id="r2", user_name="bob", key_name="ci",
                   route="/v1/embeddings", model="gemma3:270m", status=200, **common),
        AuditEvent(time=now - timedelta(minutes=1), request_id="r3", user_name=None, key_name=None,
                   route="=HYPERLINK(\"http://x\")", model=None, status=401, error="missing key", **common),
    ]


def test_audit_table_filters_and_exports(ember: Invoke, db: Database) -> None:
    ember("users", "list")  # creates and migrates the database
    record_audit_many(db, _events())
    header, *rows = ember("audit").output.splitlines()
    assert header.split()[:3] == ["TIME", "USER", "KEY"] and len(rows) == 3
    assert "401" in rows[0] and "smollm2:135m" in rows[2]

    lines = ember("audit", "--format", "jsonl", "--since", "1h").output.splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == ["r3", "r2"]
    assert [json.loads(line)["request_id"] for line in
            ember("audit", "--format", "jsonl", "--user", "alice").output.splitlines()] == ["r1"]
    assert [json.loads(line)["request_id"] for line in
            ember("audit", "--format", "jsonl", "--model", "gemma3:270m").output.splitlines()] == ["r2"]
    assert len(ember("audit", "--format", "jsonl", "--limit", "1").output.splitlines()) == 1
    since_iso = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    assert len(ember("audit", "--format", "jsonl", "--since", since_iso).output.splitlines()) == 2

    records = list(csv.DictReader(io.StringIO(ember("audit", "--format", "csv").output)))
    assert [r["request_id"] for r in records] == ["r3", "r2", "r1"]
    assert records[2]["prompt_tokens"] == "10" and records[2]["done_reason"] == "stop"
    assert records[0]["route"].startswith("'=")  # a spreadsheet will not run it as a formula


def test_audit_bad_since_is_one_line(ember: Invoke) -> None:
    assert "--since" in one_error_line(ember("audit", "--since", "last tuesday"))


def test_unreachable_database_is_one_line(ember: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nothing")
    assert "cannot open the database" in one_error_line(ember("users", "list"))
    monkeypatch.setenv("EMBER_DATABASE_URL", "mysql://u:secret@h/db")
    assert "unsupported database" in one_error_line(ember("keys", "list"))
