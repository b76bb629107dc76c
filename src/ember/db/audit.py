"""The audit log: one row per request through the web role, written in batches, read newest first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime

from sqlalchemy import delete, insert, select, update

from ember.db.database import Database
from ember.db.tables import AuditRow

# Longest kept text per field. Bodies are kept whole (they are opt-in); anything a client controls is cut
# so that one hostile request cannot write megabytes into every row.
_FIELD_LIMIT = 4096


@dataclass(frozen=True)
class AuditEvent:
    time: datetime
    request_id: str
    user_name: str | None
    key_name: str | None
    client: str | None
    method: str
    route: str
    model: str | None
    status: int
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    duration_ms: float | None = None
    done_reason: str | None = None
    node: str | None = None
    error: str | None = None
    prompt_body: str | None = None
    response_body: str | None = None


_FIELDS = tuple(f.name for f in fields(AuditEvent))
_BODIES = ("prompt_body", "response_body")


def record_audit(db: Database, event: AuditEvent) -> None:
    record_audit_many(db, [event])


def record_audit_many(db: Database, events: Sequence[AuditEvent]) -> None:
    if not events:
        return
    with db.session() as session:
        session.execute(insert(AuditRow), [_row_values(event) for event in events])


def query_audit(db: Database, *, user: str | None = None, model: str | None = None, since: datetime | None = None,
                limit: int = 100, key: str | None = None, status: int | None = None, route: str | None = None,
                until: datetime | None = None, offset: int = 0) -> list[AuditEvent]:
    """Matching events, newest first; ``since`` is inclusive, ``until`` exclusive; ``offset`` skips that many
    (a pager pins ``until`` to its first page's time so new traffic does not shift later pages)."""
    query = (select(AuditRow).order_by(AuditRow.time.desc(), AuditRow.id.desc())
             .limit(max(0, limit)).offset(max(0, offset)))
    if user is not None:
        query = query.where(AuditRow.user_name == user)
    if model is not None:
        query = query.where(AuditRow.model == model)
    if since is not None:
        query = query.where(AuditRow.time >= since)
    if key is not None:
        query = query.where(AuditRow.key_name == key)
    if status is not None:
        query = query.where(AuditRow.status == status)
    if route is not None:
        query = query.where(AuditRow.route == route)
    if until is not None:
        query = query.where(AuditRow.time < until)
    with db.reading() as session:
        return [AuditEvent(**{name: getattr(row, name) for name in _FIELDS}) for row in session.scalars(query)]


def purge_audit(db: Database, older_than: datetime) -> int:
    """Delete events before ``older_than``; returns how many."""
    with db.session() as session:
        return _rowcount(session.execute(delete(AuditRow).where(AuditRow.time < older_than)))


def purge_audit_bodies(db: Database, older_than: datetime) -> int:
    """Drop the prompt and response bodies of events before ``older_than`` (bodies have their own retention)."""
    with db.session() as session:
        result = session.execute(
            update(AuditRow)
            .where(AuditRow.time < older_than,
                   AuditRow.prompt_body.is_not(None) | AuditRow.response_body.is_not(None))
            .values(prompt_body=None, response_body=None))
        return _rowcount(result)


def _row_values(event: AuditEvent) -> dict[str, object]:
    values = asdict(event)
    for name, value in values.items():
        if isinstance(value, str) and name not in _BODIES and len(value) > _FIELD_LIMIT:
            values[name] = value[:_FIELD_LIMIT]
    return values


def _rowcount(result: object) -> int:
    count = getattr(result, "rowcount", 0)
    return int(count) if count is not None and count >= 0 else 0
