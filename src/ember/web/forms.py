"""HTML forms and their CSRF protection.

Forms without a session (login, sign-up, first admin) use a double-submit token: a random value in an
HttpOnly, SameSite=Strict cookie and the same value in a hidden field; a cross-site page can make the browser
post the form but can neither read nor set the cookie. Forms of a logged-in user (logout, password change)
carry the session's own CSRF token in a hidden field instead of the header the scripts send.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from ember.db.hashing import same_hash
from ember.db.sessions import WebUser
from ember.errors import BadRequest, CsrfFailed, Unauthorized
from ember.gateway.auth import session_token
from ember.web.pages import render
from ember.web.services import web
from ember.web.session import served_securely

FORM_COOKIE = "ember_form"
MAX_FORM_FIELDS = 20


def form_page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """Render a form page for someone without a session, with a fresh double-submit token."""
    token = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(32)
    response = render(template, status, form_token=token, **context)
    response.set_cookie(FORM_COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=served_securely(request, web(request).settings))
    return response


async def read_form(request: Request) -> FormData:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        raise BadRequest("expected a form submission")
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)


def field(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def check_form_token(request: Request, form: FormData) -> None:
    check_origin(request)
    cookie, sent = request.cookies.get(FORM_COOKIE, ""), field(form, "form_token")
    if not cookie or not sent or not same_hash(cookie, sent):
        raise CsrfFailed("the form expired or came from another site: reload the page and try again")


def check_origin(request: Request) -> None:
    """A browser's post names its page's origin; one from another site is refused even with a matching token.

    The double-submit cookie alone can be planted by a sibling subdomain (cookie tossing); the ``Origin``
    header cannot. Clients that send no ``Origin`` (scripts, old browsers) rely on the token alone.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return
    hosts = {request.headers.get("host", "").lower()}
    forwarded = request.headers.get("x-forwarded-host", "").split(",")[0].strip().lower()
    if forwarded:
        hosts.add(forwarded)
    if origin == "null" or urlsplit(origin).netloc.lower() not in hosts:
        raise CsrfFailed("this form was sent from another site: open Ember's own page and try again")


async def form_user(request: Request, form: FormData) -> WebUser:
    """The logged-in user of a form post, whose hidden ``csrf_token`` field must match the session's."""
    token = session_token(request.headers)
    if token is None:
        raise Unauthorized("log in first")
    user = await web(request).gateway.auth.session_user(token, request.headers, "GET")
    sent = field(form, "csrf_token")
    if not sent or not same_hash(sent, user.csrf_token):
        raise CsrfFailed("missing or wrong CSRF token: reload the page and try again")
    return user
