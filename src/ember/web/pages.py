"""Server-rendered pages: Jinja2 templates from the package, autoescaped, with the security headers."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ember.web.session import optional_user

# Scripts and styles come only from this origin; model output is sanitized on top of this (defence in depth).
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin", "Cache-Control": "no-store", "X-Frame-Options": "DENY"}


@cache
def _templates() -> Environment:
    return Environment(loader=PackageLoader("ember.web", "templates"), autoescape=select_autoescape(default=True),
                       trim_blocks=True, lstrip_blocks=True)


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def to_login(request: Request) -> Response:
    return RedirectResponse("/login", status_code=303)


async def index(request: Request) -> Response:
    user = await optional_user(request)
    if user is None:
        return to_login(request)
    return render("chat.html", user=user, csrf_token=user.csrf_token)
