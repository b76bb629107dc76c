"""Admin pages and routes are refused by the server to everyone but admins, not only hidden from them."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ember.db.sessions import WebUser
from ember.errors import Forbidden
from ember.web.pages import render, to_login
from ember.web.session import current_user, optional_user


async def require_admin(request: Request) -> WebUser:
    """The logged-in admin; Unauthorized without a session, Forbidden for anyone else."""
    user = await current_user(request)
    if user.role != "admin":
        raise Forbidden(f"user {user.name!r} is not an admin")
    return user


async def admin_page(request: Request, template: str, **context: Any) -> Response:
    """An admin page: the login page for nobody, 403 for a non-admin."""
    user = await optional_user(request)
    if user is None:
        return to_login(request)
    if user.role != "admin":
        return render("message.html", 403, title="Admins only", message="This page is for admins.", user=user,
                      csrf_token=user.csrf_token)
    return render(template, user=user, csrf_token=user.csrf_token, **context)
