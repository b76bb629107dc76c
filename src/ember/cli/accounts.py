"""`ember users`, `ember keys`, `ember audit`: account administration on the host, no server needed.

They open the database the web role uses (EMBER_DATABASE_URL, else EMBER_HOME/ember.db) and migrate it first.
SQLAlchemy and the repositories are imported inside the commands: loading them costs more than half a second,
which every other `ember` command would otherwise pay at start.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ember.cli.format import table
from ember.config import Settings
from ember.db.vocabulary import ROLES, SCOPES
from ember.errors import EmberError, UserNotFound

if TYPE_CHECKING:
    from ember.db import Database
    from ember.db.audit import AuditEvent
    from ember.db.keys import ApiKey

F = TypeVar("F", bound=Callable[..., Any])


def account_errors(fn: F) -> F:
    """One line on stderr and exit 1 for Ember's typed errors (bad input, unknown user, database down)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EmberError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@contextmanager
def database() -> Iterator[Database]:
    from ember.ops.accounts import open_database

    db = open_database(Settings.from_env())
    try:
        yield db
    finally:
        db.close()


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt="Repeat password"))


# --- users -----------------------------------------------------------------------------------------------------


@click.group()
def users() -> None:
    """Manage user accounts (admin, user, pending) in the configured database."""


@users.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Make the user an admin (same as --role admin).")
@click.option("--role", type=click.Choice(ROLES), help="Role of the new user [default: user].")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@account_errors
def users_create(name: str, admin: bool, role: str | None, password_stdin: bool) -> None:
    """Create user NAME; the password is asked for twice unless --password-stdin."""
    if admin and role not in (None, "admin"):
        raise click.UsageError("--admin and --role disagree")
    role = "admin" if admin else role or "user"
    from ember.db.users import create_user

    password = _read_password(password_stdin)
    with database() as db:
        user = create_user(db, name, password, role)
    click.echo(f"Created {user.role} {user.name!r}.")


@users.command("list")
@account_errors
def users_list() -> None:
    """List users: NAME, ROLE, STATUS, CREATED."""
    from ember.db.users import list_users

    with database() as db:
        rows = [[u.name, u.role, "disabled" if u.disabled else "enabled", _when(u.created_at)]
                for u in list_users(db)]
    click.echo(table(["NAME", "ROLE", "STATUS", "CREATED"], rows))


@users.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@account_errors
def users_set_role(name: str, role: str) -> None:
    """Change the role of user NAME (admin, user or pending)."""
    from ember.db.users import set_role

    with database() as db:
        user = set_role(db, name, role)
    click.echo(f"{user.name!r} is now {user.role}.")


@users.command("disable")
@click.argument("name")
@account_errors
def users_disable(name: str) -> None:
    """Disable user NAME: no logins, and their API keys are refused."""
    from ember.db.users import set_disabled

    with database() as db:
        set_disabled(db, name, True)
    click.echo(f"Disabled {name!r}.")


@users.command("enable")
@click.argument("name")
@account_errors
def users_enable(name: str) -> None:
    """Enable user NAME again."""
    from ember.db.users import set_disabled

    with database() as db:
        set_disabled(db, name, False)
    click.echo(f"Enabled {name!r}.")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from the first line of stdin.")
@account_errors
def users_passwd(name: str, password_stdin: bool) -> None:
    """Set a new password for user NAME."""
    from ember.db.users import get_user, set_password

    with database() as db:
        if get_user(db, name) is None:  # ask for a password only for a user that exists
            raise UserNotFound(name)
        set_password(db, name, _read_password(password_stdin))
    click.echo(f"Password of {name!r} changed.")


# --- keys ------------------------------------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """Manage API keys (the secret is shown once, when a key is created)."""


@keys.command("create")
@click.argument("name")
@click.option("--user", help="Owner of the key [default: the only admin, if there is exactly one].")
@click.option("--scope", default="chat,embed", show_default=True,
              help=f"Comma-separated scopes: {', '.join(SCOPES)}.")
@click.option("--models", help="Comma-separated models the key may use [default: all].")
@click.option("--rpm", type=int, help="Requests per minute [default: the role's].")
@click.option("--tpm", type=int, help="Tokens (prompt + generated) per minute [default: the role's].")
@click.option("--concurrency", type=int, help="Requests at once [default: the role's].")
@click.option("--expires", help="Lifetime such as 30d or 12h [default: never].")
@account_errors
def keys_create(name: str, user: str | None, scope: str, models: str | None, rpm: int | None, tpm: int | None,
                concurrency: int | None, expires: str | None) -> None:
    """Create API key NAME; its secret is printed once, on the last line."""
    from ember.db.keys import create_key
    from ember.ops.accounts import expiry, key_owner, split_list

    expires_at = expiry(expires, datetime.now(UTC))
    with database() as db:
        record, secret = create_key(
            db, name=name, user_name=key_owner(db, user), scopes=split_list(scope) or [], models=split_list(models),
            rpm=rpm, tpm=tpm, concurrency=concurrency, expires_at=expires_at)
    allowed = ", ".join(sorted(record.models)) if record.models is not None else "all"
    click.echo(f"Created key {record.name!r} for {record.user_name} (scopes: {', '.join(sorted(record.scopes))}; "
               f"models: {allowed}; expires: {_when(record.expires_at) if record.expires_at else 'never'}).")
    click.echo("Copy the secret now; it is not stored and will not be shown again:")
    click.echo(secret)


@keys.command("list")
@click.option("--user", help="Only the keys of this user.")
@account_errors
def keys_list(user: str | None) -> None:
    """List API keys (never their secrets): NAME, USER, KEY, SCOPES, MODELS, LIMITS, EXPIRES, STATUS."""
    from ember.db.keys import list_keys

    now = datetime.now(UTC)
    with database() as db:
        found = list_keys(db, user)
    rows = [[k.name, k.user_name, k.hint, ",".join(sorted(k.scopes)),
             ",".join(sorted(k.models)) if k.models is not None else "all", _limits(k),
             _when(k.expires_at) if k.expires_at else "never", k.refusal(now) or "active"] for k in found]
    click.echo(table(["NAME", "USER", "KEY", "SCOPES", "MODELS", "LIMITS", "EXPIRES", "STATUS"], rows))


def _limits(key: ApiKey) -> str:
    parts = [f"{label}={value}" for label, value in (("rpm", key.rpm), ("tpm", key.tpm),
                                                      ("concurrency", key.concurrency)) if value is not None]
    return " ".join(parts) or "role default"


@keys.command("revoke")
@click.argument("name")
@account_errors
def keys_revoke(name: str) -> None:
    """Revoke API key NAME; requests with it are refused from now on."""
    from ember.db.keys import revoke_key

    with database() as db:
        revoke_key(db, name)
    click.echo(f"Revoked key {name!r}.")


# --- audit -----------------------------------------------------------------------------------------------------

_AUDIT_HEADERS = ["TIME", "USER", "KEY", "CLIENT", "ROUTE", "MODEL", "STATUS", "PROMPT", "OUTPUT", "TTFT MS",
                  "MS", "NODE"]


@click.command()
@click.option("--user", help="Only requests by this user.")
@click.option("--model", help="Only requests for this model.")
@click.option("--since", help="Only requests since a duration ago (1h, 7d) or an ISO time.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Rows to show.")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]), default="table", show_default=True,
              help="table for reading, jsonl or csv for export (all fields).")
@account_errors
def audit(user: str | None, model: str | None, since: str | None, limit: int, fmt: str) -> None:
    """Show the latest audit log rows, newest first, or export them as JSON lines or CSV."""
    from ember.db.audit import query_audit
    from ember.ops.accounts import audit_records, since_time

    start = since_time(since, datetime.now(UTC))
    with database() as db:
        events = query_audit(db, user=user, model=model, since=start, limit=limit)
    if fmt == "jsonl":
        for record in audit_records(events):
            click.echo(json.dumps(record, ensure_ascii=False))
    elif fmt == "csv":
        click.echo(_csv(audit_records(events)), nl=False)
    else:
        click.echo(table(_AUDIT_HEADERS, [_audit_row(e) for e in events]))


def _audit_row(e: AuditEvent) -> list[str]:
    def text(value: object) -> str:
        if value is None:
            return "-"
        return f"{value:.0f}" if isinstance(value, float) else str(value)

    return [_when(e.time), text(e.user_name), text(e.key_name), text(e.client), f"{e.method} {e.route}",
            text(e.model), str(e.status), text(e.prompt_tokens), text(e.completion_tokens), text(e.ttft_ms),
            text(e.duration_ms), text(e.node)]


def _csv(records: list[dict[str, Any]]) -> str:
    from ember.db.audit import AuditEvent

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[f.name for f in fields(AuditEvent)], lineterminator="\n")
    writer.writeheader()
    writer.writerows({name: _spreadsheet_safe(value) for name, value in record.items()} for record in records)
    return out.getvalue()


def _spreadsheet_safe(value: object) -> object:
    """Client-controlled text (routes, names) must not open as a formula in a spreadsheet: quote it (OWASP)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


COMMANDS = [users, keys, audit]
