"""Users: names, roles, argon2id passwords, and the one-time tokens that bootstrap the first admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ember.db.database import Database
from ember.db.hashing import (
    hash_password,
    password_needs_rehash,
    random_secret,
    same_hash,
    sha256_hex,
    verify_password,
)
from ember.db.tables import SetupTokenRow, UserRow, utcnow
from ember.db.validate import check_name
from ember.db.vocabulary import ROLES
from ember.errors import InvalidPassword, InvalidRole, LastAdmin, UserExists, UserNotFound

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; this bounds the work one login can cause
SETUP_TOKEN_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    disabled: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(id=row.id, name=row.name, role=row.role, disabled=row.disabled, created_at=row.created_at)


def create_user(db: Database, name: str, password: str, role: str = "user") -> User:
    check_name(name, "user")
    _check_role(role)
    _check_password(password)
    password_hash = hash_password(password)  # slow: outside the transaction
    try:
        with db.session() as session:
            return _insert_user(session, name, password_hash, role)
    except IntegrityError as exc:
        raise UserExists(name) from exc


def authenticate_user(db: Database, name: str, password: str) -> User | None:
    """The user if the password matches and the account is enabled; None otherwise (same time either way)."""
    with db.reading() as session:
        row = session.scalar(select(UserRow).where(UserRow.name == name))
        stored = row.password_hash if row is not None else None
    if len(password) > MAX_PASSWORD_LENGTH or not verify_password(stored, password):
        return None
    assert row is not None and stored is not None
    if password_needs_rehash(stored):  # hashed with older parameters: upgrade it while the password is at hand
        _store_password_hash(db, name, hash_password(password))
    return None if row.disabled else User.from_row(row)


def get_user(db: Database, name: str) -> User | None:
    with db.reading() as session:
        row = session.scalar(select(UserRow).where(UserRow.name == name))
        return User.from_row(row) if row is not None else None


def list_users(db: Database) -> list[User]:
    with db.reading() as session:
        return [User.from_row(row) for row in session.scalars(select(UserRow).order_by(UserRow.name))]


def set_role(db: Database, name: str, role: str) -> User:
    _check_role(role)
    with db.session() as session:
        row = _user_row(session, name)
        if row.role == "admin" and role != "admin" and not row.disabled:
            _refuse_if_last_admin(session, row)
        row.role = role
        return User.from_row(row)


def set_disabled(db: Database, name: str, disabled: bool) -> User:
    with db.session() as session:
        row = _user_row(session, name)
        if disabled and row.role == "admin" and not row.disabled:
            _refuse_if_last_admin(session, row)
        row.disabled = disabled
        return User.from_row(row)


def set_password(db: Database, name: str, password: str) -> None:
    _check_password(password)
    _store_password_hash(db, name, hash_password(password))


def _store_password_hash(db: Database, name: str, password_hash: str) -> None:
    with db.session() as session:
        _user_row(session, name).password_hash = password_hash


def admin_exists(db: Database) -> bool:
    """Whether any admin account exists, enabled or not (a disabled one is re-enabled from the host CLI)."""
    with db.reading() as session:
        return bool(session.scalar(select(func.count()).select_from(UserRow).where(UserRow.role == "admin")))


def create_setup_token(db: Database, ttl: timedelta = SETUP_TOKEN_TTL) -> str:
    """A one-time token for creating the first admin; only its hash is stored."""
    token, now = random_secret(), utcnow()
    with db.session() as session:
        session.execute(delete(SetupTokenRow).where(SetupTokenRow.expires_at <= now))  # no pile-up across restarts
        session.add(SetupTokenRow(token_hash=sha256_hex(token), expires_at=now + ttl))
    return token


def consume_setup_token(db: Database, token: str) -> bool:
    """True exactly once for a valid unexpired token, and only while no admin exists."""
    with db.session() as session:
        return _consume_setup_token(session, token)


def create_first_admin(db: Database, token: str, name: str, password: str) -> User | None:
    """Spend a setup token and create the first admin in one transaction; None if the token is not valid.

    If creating the user fails (a taken name, a short password) the token is not spent.
    """
    check_name(name, "user")
    _check_password(password)
    password_hash = hash_password(password)
    try:
        with db.session() as session:
            if not _consume_setup_token(session, token):
                return None
            return _insert_user(session, name, password_hash, "admin")
    except IntegrityError as exc:
        raise UserExists(name) from exc


def _consume_setup_token(session: Session, token: str) -> bool:
    if session.scalar(select(func.count()).select_from(UserRow).where(UserRow.role == "admin")):
        return False
    now, digest = utcnow(), sha256_hex(token)
    live = session.scalars(select(SetupTokenRow).where(SetupTokenRow.used_at.is_(None),
                                                      SetupTokenRow.expires_at > now)).all()
    match = next((row for row in live if same_hash(row.token_hash, digest)), None)
    if match is None:
        return False
    # Spend every live token in one statement: of two requests racing with two tokens, only one sees its
    # row updated here (the other blocks on the row locks, then finds used_at set).
    spent = session.scalars(
        update(SetupTokenRow).where(SetupTokenRow.used_at.is_(None), SetupTokenRow.expires_at > now)
        .values(used_at=now).returning(SetupTokenRow.id)
    ).all()
    return match.id in spent


def _insert_user(session: Session, name: str, password_hash: str, role: str) -> User:
    row = UserRow(name=name, password_hash=password_hash, role=role, disabled=False)
    session.add(row)
    session.flush()
    return User.from_row(row)


def _user_row(session: Session, name: str) -> UserRow:
    row = session.scalar(select(UserRow).where(UserRow.name == name))
    if row is None:
        raise UserNotFound(name)
    return row


def _refuse_if_last_admin(session: Session, row: UserRow) -> None:
    others = session.scalar(select(func.count()).select_from(UserRow).where(
        UserRow.role == "admin", UserRow.disabled.is_(False), UserRow.id != row.id))
    if not others:
        raise LastAdmin(f"{row.name!r} is the only enabled admin; make another admin first")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidRole(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")


def _check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidPassword(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidPassword(f"password must be at most {MAX_PASSWORD_LENGTH} characters")
