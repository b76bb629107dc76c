"""API keys: random secrets with a recognisable prefix; only their sha256 is stored.

The prefix lets secret scanners (and people) recognise a leaked Ember key. The secret is shown once, when
the key is created; afterwards only the hint (prefix + first characters) identifies it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ember.db.database import Database
from ember.db.hashing import random_secret, same_hash, sha256_hex
from ember.db.tables import ApiKeyRow, UserRow, utcnow
from ember.db.validate import check_limit, check_name
from ember.db.vocabulary import SCOPES
from ember.errors import InvalidModelName, InvalidScope, KeyExists, KeyNotFound, UserNotFound
from ember.names import ModelName

KEY_PREFIX = "ember_sk_"
HINT_CHARS = 4
_SECRET = re.compile(re.escape(KEY_PREFIX) + r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    hint: str
    user_name: str
    user_role: str
    user_disabled: bool
    scopes: frozenset[str]
    models: frozenset[str] | None  # None = all models; else ModelName.display forms
    rpm: int | None
    tpm: int | None
    concurrency: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def refusal(self, now: datetime) -> str | None:
        """Why this key may not be used at ``now``, or None if it may."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.user_disabled:
            return "user disabled"
        if self.user_role == "pending":
            return "user pending approval"
        return None

    def allows_model(self, model: str) -> bool:
        """Whether the key may use ``model`` (compared the way the store resolves names)."""
        if self.models is None:
            return True
        try:
            wanted = ModelName.parse(model).key
        except InvalidModelName:
            return False
        return any(ModelName.parse(allowed).key == wanted for allowed in self.models)

    @classmethod
    def from_row(cls, row: ApiKeyRow) -> ApiKey:
        return cls(
            id=row.id, name=row.name, hint=row.hint, user_name=row.user.name, user_role=row.user.role,
            user_disabled=row.user.disabled, scopes=_scopes(row.scopes), models=_models(row.models), rpm=row.rpm,
            tpm=row.tpm, concurrency=row.concurrency, created_at=row.created_at, expires_at=row.expires_at,
            revoked_at=row.revoked_at,
        )


def _scopes(stored: str) -> frozenset[str]:
    return frozenset(stored.split(",")) if stored else frozenset()


def _models(stored: list[str] | None) -> frozenset[str] | None:
    return frozenset(stored) if stored is not None else None


def create_key(db: Database, *, name: str, user_name: str, scopes: Iterable[str],
               models: Iterable[str] | None = None, rpm: int | None = None, tpm: int | None = None,
               concurrency: int | None = None, expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """A new key for ``user_name``; returns the record and the secret, which is not stored and not shown again."""
    check_name(name, "key")
    row = ApiKeyRow(name=name, scopes=",".join(check_scopes(scopes)), models=normalize_models(models),
                    rpm=check_limit(rpm, "rpm"), tpm=check_limit(tpm, "tpm"),
                    concurrency=check_limit(concurrency, "concurrency"), expires_at=expires_at)
    secret = random_secret(KEY_PREFIX)
    row.secret_hash, row.hint = sha256_hex(secret), hint_for(secret)
    try:
        with db.session() as session:
            user = session.scalar(select(UserRow).where(UserRow.name == user_name))
            if user is None:
                raise UserNotFound(user_name)
            row.user = user
            session.add(row)
            session.flush()
            return ApiKey.from_row(row), secret
    except IntegrityError as exc:
        raise KeyExists(name) from exc


# find_key runs on every request: a Core query (about 0.1 ms on SQLite) rather than the ORM (about 0.5 ms).
_FIND = (select(ApiKeyRow.__table__, UserRow.name.label("user_name"), UserRow.role.label("user_role"),
                UserRow.disabled.label("user_disabled"))
         .join(UserRow, UserRow.id == ApiKeyRow.user_id))


def find_key(db: Database, secret: str) -> ApiKey | None:
    """The key whose secret this is, revoked and expired ones included (the caller asks ``refusal``)."""
    if not looks_like_key(secret):
        return None
    digest = sha256_hex(secret)
    with db.engine.connect() as conn:
        row = conn.execute(_FIND.where(ApiKeyRow.secret_hash == digest)).mappings().first()
    if row is None or not same_hash(row["secret_hash"], digest):
        return None
    return ApiKey(
        id=row["id"], name=row["name"], hint=row["hint"], user_name=row["user_name"], user_role=row["user_role"],
        user_disabled=bool(row["user_disabled"]), scopes=_scopes(row["scopes"]), models=_models(row["models"]),
        rpm=row["rpm"], tpm=row["tpm"], concurrency=row["concurrency"], created_at=row["created_at"],
        expires_at=row["expires_at"], revoked_at=row["revoked_at"])


def list_keys(db: Database, user_name: str | None = None) -> list[ApiKey]:
    query = select(ApiKeyRow).join(ApiKeyRow.user).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
    if user_name is not None:
        query = query.where(UserRow.name == user_name)
    with db.reading() as session:
        return [ApiKey.from_row(row) for row in session.scalars(query)]


def revoke_key(db: Database, name: str) -> ApiKey:
    """Revoke the live key called ``name``; KeyNotFound if there is none."""
    with db.session() as session:
        row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.name == name, ApiKeyRow.revoked_at.is_(None)))
        if row is None:
            raise KeyNotFound(name)
        row.revoked_at = utcnow()
        return ApiKey.from_row(row)


def looks_like_key(secret: str) -> bool:
    """Shape check before any database work: the prefix and 43 URL-safe characters."""
    return isinstance(secret, str) and _SECRET.fullmatch(secret) is not None


def hint_for(secret: str) -> str:
    return secret[:len(KEY_PREFIX) + HINT_CHARS] + "..."


def check_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = sorted({s.strip() for s in scopes if s.strip()})
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise InvalidScope(f"unknown scope {', '.join(map(repr, unknown))}: expected some of {', '.join(SCOPES)}")
    if not chosen:
        raise InvalidScope(f"a key needs at least one scope of {', '.join(SCOPES)}")
    return chosen


def normalize_models(models: Iterable[str] | None) -> list[str] | None:
    """Model names in their display form (``x`` becomes ``x:latest``); None means all models."""
    if models is None:
        return None
    return sorted({ModelName.parse(m.strip()).display for m in models if m.strip()})
