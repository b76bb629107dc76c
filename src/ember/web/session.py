"""The browser session: the cookie that carries it, and who the request's user is.

The token lives in an HttpOnly, SameSite=Lax cookie (Secure over HTTPS or with EMBER_COOKIE_SECURE); the
session itself lives in the database (ember.db.sessions), so logout and disable act at once on every replica.
State-changing requests also carry the session's CSRF token in the ``X-CSRF-Token`` header (pages put it in
``<meta name=csrf-token>``); the gateway's Authenticator checks both.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ember.config import Settings
from ember.db.sessions import WebUser
from ember.errors import Unauthorized
from ember.gateway.auth import SESSION_COOKIE, session_token
from ember.web.services import web


def served_securely(request: Request, settings: Settings) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return settings.cookie_secure or request.url.scheme == "https" or forwarded == "https"


def set_session_cookie(response: Response, request: Request, settings: Settings, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(settings.session_ttl), path="/", httponly=True,
                        samesite="lax", secure=served_securely(request, settings))


def clear_session_cookie(response: Response, request: Request, settings: Settings) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=served_securely(request, settings))


async def current_user(request: Request) -> WebUser:
    """The logged-in user of this request; Unauthorized without a live session (CSRF checked for writes)."""
    token = session_token(request.headers)
    if token is None:
        raise Unauthorized("log in first")
    return await web(request).gateway.auth.session_user(token, request.headers, request.method)


async def optional_user(request: Request) -> WebUser | None:
    """The logged-in user, or None (pages that redirect to the login page use this)."""
    try:
        return await current_user(request)
    except Unauthorized:
        return None
