"""Browser sessions of the web UI, stored server-side so that logout and disable take effect at once.

The cookie holds a random token; only its sha256 is stored. Each lookup joins the user, so a disabled or
demoted user's open sessions stop working on their next request. Several web replicas share them through
the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from ember.db.database import Database
from ember.db.hashing import random_secret, sha256_hex
from ember.db.tables import UserRow, WebSessionRow, utcnow

TOUCH_EVERY = timedelta(minutes=5)  # last_seen_at is refreshed at most this often (one write per request is waste)


@dataclass(frozen=True)
class WebUser:
    """The user behind a browser session, as authorization, limits and CSRF checks need to know."""

    user_id: int
    name: str
    role: str
    disabled: bool
    session_id: int
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class NewSession:
    token: str  # goes into the cookie; never stored
    user: WebUser


def create_session(db: Database, user_id: int, ttl: timedelta, client: str | None = None) -> NewSession:
    token, csrf = random_secret(), random_secret()
    now = utcnow()
    with db.session() as session:
        user = session.get(UserRow, user_id)
        if user is None:
            raise LookupError(f"no user with id {user_id}")
        row = WebSessionRow(token_hash=sha256_hex(token), user_id=user_id, csrf_token=csrf, client=client,
                            created_at=now, last_seen_at=now, expires_at=now + ttl)
        session.add(row)
        session.flush()
        return NewSession(token, _web_user(row, user))


def find_session(db: Database, token: str) -> WebUser | None:
    """The session's user if the token names a live session; None otherwise. Reads only, except to delete an
    expired session or refresh ``last_seen_at`` now and then."""
    now = utcnow()
    token_hash = sha256_hex(token)
    with db.reading() as session:
        found = session.execute(select(WebSessionRow, UserRow).join(UserRow, UserRow.id == WebSessionRow.user_id)
                                .where(WebSessionRow.token_hash == token_hash)).first()
        if found is None:
            return None
        row, user = found
        user_seen = _web_user(row, user)
        expired, stale = row.expires_at <= now, now - row.last_seen_at >= TOUCH_EVERY
    if expired:
        end_session(db, token)
        return None
    if stale:
        with db.session() as session:
            session.execute(update(WebSessionRow).where(WebSessionRow.id == user_seen.session_id)
                            .values(last_seen_at=now))
    return user_seen


def end_session(db: Database, token: str) -> None:
    with db.session() as session:
        session.execute(delete(WebSessionRow).where(WebSessionRow.token_hash == sha256_hex(token)))


def end_sessions_of(db: Database, user_id: int, *, keep_session_id: int | None = None) -> int:
    """End every session of a user (password reset, disable), optionally keeping the caller's own."""
    query = delete(WebSessionRow).where(WebSessionRow.user_id == user_id)
    if keep_session_id is not None:
        query = query.where(WebSessionRow.id != keep_session_id)
    with db.session() as session:
        return int(session.execute(query).rowcount or 0)  # type: ignore[attr-defined]


def purge_expired(db: Database) -> int:
    with db.session() as session:
        return int(session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= utcnow()))
                   .rowcount or 0)  # type: ignore[attr-defined]


def extend_session(db: Database, session_id: int, ttl: timedelta) -> None:
    with db.session() as session:
        session.execute(update(WebSessionRow).where(WebSessionRow.id == session_id)
                        .values(expires_at=utcnow() + ttl))


def _web_user(row: WebSessionRow, user: UserRow) -> WebUser:
    return WebUser(user_id=user.id, name=user.name, role=user.role, disabled=user.disabled, session_id=row.id,
                   csrf_token=row.csrf_token, expires_at=row.expires_at)
