"""Who is asking: an API key (``Authorization: Bearer`` or ``x-api-key``), a logged-in browser (the web UI's
session cookie), or nobody (anonymous, loopback only).

Only a hash of each secret is stored (``ember.db.keys``), so a lookup hashes what the client sent; the secret
itself is never logged, audited or forwarded. A revoked, expired, disabled or pending key is a 401, like a
wrong one: the caller has no usable credential. A valid key without the route's scope, or for a model outside
its allow-list, is a 403.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers

from ember.db.database import Database
from ember.db.hashing import same_hash
from ember.db.keys import KEY_PREFIX, ApiKey, find_key, looks_like_key
from ember.db.sessions import WebUser, find_session
from ember.db.tables import utcnow
from ember.db.vocabulary import SCOPES
from ember.errors import CsrfFailed, DatabaseUnavailable, Forbidden, Unauthorized

# Anonymous use (EMBER_ANONYMOUS on a loopback bind) is Ollama's default trust model: everything but admin.
ANONYMOUS_SCOPES = frozenset({"chat", "embed", "models"})
# A logged-in user of the web UI acts with their role's scopes: admins may do everything.
USER_SCOPES = ANONYMOUS_SCOPES
ADMIN_SCOPES = frozenset(SCOPES)

SESSION_COOKIE = "ember_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """The caller of one request, as far as authorization, limits and audit need to know: an API key, a
    browser session's user, or neither (anonymous)."""

    key: ApiKey | None
    user: WebUser | None = None

    @property
    def anonymous(self) -> bool:
        return self.key is None and self.user is None

    @property
    def user_name(self) -> str | None:
        if self.key:
            return self.key.user_name
        return self.user.name if self.user else None

    @property
    def key_name(self) -> str | None:
        return self.key.name if self.key else None

    @property
    def user_role(self) -> str:
        """The role whose default limits apply: the key's user's, the session's user's, or ``anonymous``."""
        if self.key:
            return self.key.user_role
        return self.user.role if self.user else "anonymous"

    @property
    def scopes(self) -> frozenset[str]:
        if self.key:
            return self.key.scopes
        if self.user:
            return ADMIN_SCOPES if self.user.role == "admin" else USER_SCOPES
        return ANONYMOUS_SCOPES

    @property
    def privileged(self) -> bool:
        """Admin keys (and admins in the UI) may override locked model options."""
        return "admin" in self.scopes

    @property
    def subject(self) -> str:
        """What limits are counted against: the key (by id, never by secret), the user of a browser session,
        or all anonymous callers together."""
        if self.key:
            return f"key:{self.key.id}"
        return f"user:{self.user.user_id}" if self.user else "anonymous"

    @property
    def caller(self) -> str:
        """How error messages name the caller."""
        if self.key:
            return f"API key {self.key.name!r}"
        return f"user {self.user.name!r}" if self.user else "an anonymous caller"

    def allows_model(self, model: str) -> bool:
        return self.key is None or self.key.allows_model(model)


ANONYMOUS = Principal(key=None)


def presented_secret(headers: Headers) -> str | None:
    """The credential the client sent, or None; a malformed ``Authorization`` header is a 401 of its own."""
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("malformed Authorization header: expected 'Bearer <API key>'")
        return token.strip()
    api_key = headers.get("x-api-key")
    return api_key.strip() if api_key is not None and api_key.strip() else None


def addressed_locally(headers: Headers) -> bool:
    """Whether the request names a loopback host. A web page that DNS-rebinds its own domain to 127.0.0.1
    reaches a loopback server under that domain's name; anonymous use is refused to such requests."""
    host = headers.get("host", "").lower()
    name = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0] if ":" in host else host
    return name in ("localhost", "127.0.0.1", "::1") or name.endswith(".localhost") or name.startswith("127.")


class Authenticator:
    def __init__(self, database: Database, *, anonymous: bool) -> None:
        self.database = database
        self.anonymous = anonymous
        self.inline = database.dialect == "sqlite"

    async def authenticate(self, headers: Headers, method: str = "GET") -> Principal:
        secret = presented_secret(headers)
        if secret is None:
            token = session_token(headers)
            if token is not None:
                return Principal(key=None, user=await self.session_user(token, headers, method))
        if secret is None or (self.anonymous and not secret.startswith(KEY_PREFIX)):
            # In anonymous mode a placeholder token (SDKs insist on sending one) means "no key".
            if self.anonymous and addressed_locally(headers):
                return ANONYMOUS
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
        if not looks_like_key(secret):
            raise Unauthorized(f"invalid API key: Ember keys start with {KEY_PREFIX} followed by 43 characters")
        # SQLite answers a lookup by primary-key hash in ~0.1 ms: cheaper inline than a hand-over to a worker
        # thread (which cost ~1 ms of GIL switching under load). A server database goes to a thread.
        key = self._find(secret) if self.inline else await anyio.to_thread.run_sync(self._find, secret)
        if key is None:
            raise Unauthorized("invalid API key")
        refusal = key.refusal(utcnow())
        if refusal is not None:
            raise Unauthorized(f"API key {key.name!r} cannot be used: {refusal}")
        return Principal(key=key)

    async def session_user(self, token: str, headers: Headers, method: str) -> WebUser:
        """The user of a browser session; a state-changing request must also carry the session's CSRF token."""
        user = self._session(token) if self.inline else await anyio.to_thread.run_sync(self._session, token)
        if user is None:
            raise Unauthorized("your session has ended: log in again")
        if user.disabled:
            raise Unauthorized(f"user {user.name!r} is disabled")
        if user.role == "pending":
            raise Unauthorized(f"user {user.name!r} is waiting for an admin's approval")
        if method.upper() not in SAFE_METHODS:
            sent = headers.get(CSRF_HEADER, "")
            if not sent or not same_hash(sent, user.csrf_token):
                raise CsrfFailed("missing or wrong CSRF token: reload the page and try again")
        return user

    def _session(self, token: str) -> WebUser | None:
        try:
            return find_session(self.database, token)
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable("the session database cannot be reached; try again") from exc

    def _find(self, secret: str) -> ApiKey | None:
        try:
            return find_key(self.database, secret)
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable("the key database cannot be reached; try again") from exc


def session_token(headers: Headers) -> str | None:
    """The web UI's session token from the ``Cookie`` header, or None."""
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE and value:
            return value
    return None


def authorize(principal: Principal, scope: str | None, model: str | None) -> None:
    """Forbidden unless the caller holds ``scope`` (None: any valid caller) and may use ``model``."""
    if scope is not None and scope not in principal.scopes:
        raise Forbidden(f"{principal.caller} lacks the {scope!r} scope this route needs")
    if model is not None and not principal.allows_model(model):
        raise Forbidden(f"{principal.caller} may not use model {model!r}")
