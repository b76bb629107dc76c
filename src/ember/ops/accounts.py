"""Host-side account administration: users, API keys and the audit log, straight on the configured database.

These run without a server (`ember users create NAME --admin` bootstraps the first admin), against the same
database the web role uses: EMBER_DATABASE_URL, else EMBER_HOME/ember.db. They migrate it first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from ember.config import Settings
from ember.db import Database
from ember.db.audit import AuditEvent
from ember.db.users import list_users
from ember.durations import parse_duration
from ember.errors import BadRequest


def open_database(settings: Settings) -> Database:
    """The configured database, migrated to the newest schema."""
    db = Database.open(settings.database)
    try:
        db.migrate()
    except BaseException:
        db.close()
        raise
    return db


def key_owner(db: Database, user: str | None) -> str:
    """``user`` if given, else the only admin; with no admin or several, the caller must say."""
    if user:
        return user
    admins = [u.name for u in list_users(db) if u.role == "admin"]
    if len(admins) == 1:
        return admins[0]
    if not admins:
        raise BadRequest("no admin exists yet: create one with `ember users create NAME --admin`, or pass --user")
    raise BadRequest(f"several admins exist ({', '.join(admins)}): pass --user")


def expiry(text: str | None, now: datetime) -> datetime | None:
    """``--expires 30d``: a time that far from now; None for no expiry (not given, or negative = never)."""
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except BadRequest:
        raise BadRequest(f"--expires: expected a duration such as 30d or 12h, got {text!r}") from None
    if math.isinf(seconds):
        return None
    if seconds <= 0:
        raise BadRequest(f"--expires must be a positive duration such as 30d or 12h, got {text!r}")
    return now + timedelta(seconds=seconds)


def since_time(text: str | None, now: datetime) -> datetime | None:
    """``--since 1h`` (that long ago) or ``--since 2026-01-01T12:00`` (an ISO time; UTC if no offset)."""
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except BadRequest:
        return _iso_time(text)
    return datetime.min.replace(tzinfo=UTC) if math.isinf(seconds) else now - timedelta(seconds=seconds)


def _iso_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadRequest(f"--since: expected a duration (1h, 30m, 7d) or an ISO time, got {text!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def split_list(text: str | None) -> list[str] | None:
    """``a,b, c`` -> ["a", "b", "c"]; None stays None."""
    if text is None:
        return None
    return [item.strip() for item in text.split(",") if item.strip()]


def audit_record(event: AuditEvent) -> dict[str, Any]:
    """One event as plain JSON-ready values (time in ISO 8601 UTC)."""
    record = asdict(event)
    record["time"] = event.time.astimezone(UTC).isoformat()
    return record


def audit_records(events: Iterable[AuditEvent]) -> list[dict[str, Any]]:
    return [audit_record(event) for event in events]
