"""The first admin, created through a one-time setup link while no admin exists.

At start the web role makes a random token (only its hash is stored) and logs the link; ``GET /setup`` shows a
minimal form and ``POST /setup`` creates the admin if the token is valid, spending it. Once an admin exists no
token works. ``ember users create NAME --admin`` on the host does the same without a running server.
"""

from __future__ import annotations

import html
import logging
from urllib.parse import parse_qs

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ember.config import Settings
from ember.db.database import Database
from ember.db.users import admin_exists, create_first_admin, create_setup_token
from ember.edge import read_body
from ember.errors import BadRequest, EmberError

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 16 * 1024


def offer_setup_link(settings: Settings, database: Database) -> str | None:
    """When no admin exists, make a token and log the setup link; return the token (None if an admin exists)."""
    if admin_exists(database):
        return None
    token = create_setup_token(database)
    log.warning("no admin account exists yet: open %s/setup?token=%s within 24 hours to create one "
                "(or run `ember users create NAME --admin` on this host)", _web_url(settings), token)
    return token


def _web_url(settings: Settings) -> str:
    host = settings.web_host if "://" in settings.web_host else f"http://{settings.web_host}"
    return host.rstrip("/")


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title></head>"
                        f"<body><main><h1>{title}</h1>{body}</main></body></html>", status_code=status,
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _form(token: str, error: str = "") -> str:
    problem = f"<p role=alert>{html.escape(error)}</p>" if error else ""
    return (f"{problem}<form method=post action=/setup>"
            f"<input type=hidden name=token value=\"{html.escape(token, quote=True)}\">"
            "<p><label>Admin name <input name=name required autocomplete=username></label></p>"
            "<p><label>Password <input name=password type=password required minlength=8 "
            "autocomplete=new-password></label></p>"
            "<p><button type=submit>Create admin</button></p></form>")


async def setup_form(request: Request, database: Database) -> HTMLResponse:
    if await anyio.to_thread.run_sync(admin_exists, database):
        return _page("Setup done", "<p>An admin account exists already; this link no longer works.</p>", 410)
    token = request.query_params.get("token", "")
    if not token:
        return _page("Setup", "<p>Open the setup link the server logged at start.</p>", 400)
    return _page("Create the first admin", _form(token))


async def setup_submit(request: Request, settings: Settings, database: Database) -> HTMLResponse:
    raw = await read_body(request, MAX_FORM_BYTES, settings.body_timeout)
    fields = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), max_num_fields=10).items()}
    token, name, password = fields.get("token", ""), fields.get("name", ""), fields.get("password", "")
    try:
        if not token or not name or not password:
            raise BadRequest("name, password and the setup token are required")
        user = await anyio.to_thread.run_sync(create_first_admin, database, token, name, password)
    except EmberError as exc:
        return _page("Create the first admin", _form(token, exc.message), exc.status)
    if user is None:
        return _page("Setup link not valid", "<p>This setup link is invalid, expired or used already.</p>", 403)
    log.info("the first admin %r was created through the setup link", user.name)
    return _page("Admin created", f"<p>The admin account {html.escape(user.name)} exists now. Create API keys "
                 "with <code>ember keys create NAME --user " + html.escape(user.name) + "</code>.</p>")
