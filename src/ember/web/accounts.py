"""Log in, sign up, log out, change one's password, and the first admin through the setup link."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ember.config import SIGNUP_MODES
from ember.db.app_settings import get_setting
from ember.db.sessions import create_session, end_session, end_sessions_of
from ember.db.users import authenticate_user, create_first_admin, create_user, set_password
from ember.errors import EmberError, Forbidden, RateLimited, Unauthorized
from ember.gateway.auth import session_token
from ember.web.forms import check_form_token, field, form_page, form_user, read_form
from ember.web.login_limits import LoginLimits
from ember.web.pages import render, to_login
from ember.web.services import WebUI, web
from ember.web.session import clear_session_cookie, current_user, optional_user, set_session_cookie

log = logging.getLogger(__name__)


def _limits(ui: WebUI) -> LoginLimits:
    assert ui.login_limits is not None, "create_app sets the login limits"
    return ui.login_limits


def signup_mode(ui: WebUI) -> str:
    mode = get_setting(ui.database, "signup", ui.settings.signup)
    return mode if mode in SIGNUP_MODES else ui.settings.signup


async def _logged_in(request: Request, user_id: int, to: str = "/") -> Response:
    ui = web(request)
    client = request.client.host if request.client else None
    previous = session_token(request.headers)
    if previous is not None:  # a browser holds one session: the one it had (maybe another account's) ends
        await anyio.to_thread.run_sync(end_session, ui.database, previous)
    made = await anyio.to_thread.run_sync(create_session, ui.database, user_id,
                                          timedelta(seconds=ui.settings.session_ttl), client)
    response = RedirectResponse(to, status_code=303)
    set_session_cookie(response, request, ui.settings, made.token)
    return response


async def login_page(request: Request) -> Response:
    if await optional_user(request) is not None:
        return RedirectResponse("/", status_code=303)
    return form_page(request, "login.html", signup=signup_mode(web(request)) != "closed")


async def login_submit(request: Request) -> Response:
    ui = web(request)
    form = await read_form(request)
    name, password = field(form, "username").strip(), field(form, "password")
    context: dict[str, Any] = {"username": name, "signup": signup_mode(ui) != "closed"}
    address = request.client.host if request.client else None
    try:
        check_form_token(request, form)
        await _limits(ui).check(name, address)
    except RateLimited as exc:
        page = form_page(request, "login.html", 429, error=exc.message, **context)
        page.headers.update(exc.headers)
        return page
    except EmberError as exc:
        return form_page(request, "login.html", exc.status, error=exc.message, **context)
    user = await anyio.to_thread.run_sync(authenticate_user, ui.database, name, password)
    if user is None:
        await _limits(ui).failed(name, address)
        return form_page(request, "login.html", 401, error="Wrong user name or password, or the account is "
                         "disabled.", **context)
    await _limits(ui).succeeded(name)
    if user.role == "pending":
        return form_page(request, "login.html", 403, notice="Your account is waiting for an admin's approval.",
                         **context)
    log.info("user %r logged in to the web UI", user.name)
    return await _logged_in(request, user.id)


async def signup_page(request: Request) -> Response:
    mode = signup_mode(web(request))
    return form_page(request, "signup.html", 403 if mode == "closed" else 200, mode=mode)


async def signup_submit(request: Request) -> Response:
    ui = web(request)
    mode = signup_mode(ui)
    form = await read_form(request)
    name, password = field(form, "username").strip(), field(form, "password")
    try:
        check_form_token(request, form)
        if mode == "closed":
            raise Forbidden("sign-up is closed: ask an admin for an account")
        if password != field(form, "confirm"):
            return form_page(request, "signup.html", 400, mode=mode, username=name,
                             error="The two passwords differ.")
        # Each sign-up counts against the address (not the name): one address cannot mass-create accounts.
        address = request.client.host if request.client else None
        await _limits(ui).check(None, address)
        await _limits(ui).failed(None, address)
        role = "user" if mode == "open" else "pending"
        user = await anyio.to_thread.run_sync(create_user, ui.database, name, password, role)
    except EmberError as exc:
        page = form_page(request, "signup.html", exc.status, mode=mode, username=name, error=exc.message)
        if isinstance(exc, RateLimited):
            page.headers.update(exc.headers)
        return page
    log.info("user %r signed up in the web UI (%s)", user.name, user.role)
    if user.role == "pending":
        return form_page(request, "login.html", 201, username=name, signup=True,
                         notice="Your account was created. An admin must approve it before you can log in.")
    return await _logged_in(request, user.id)


async def logout(request: Request) -> Response:
    ui = web(request)
    form = await read_form(request)
    token = session_token(request.headers)
    try:
        await form_user(request, form)  # only the user's own pages may log them out
    except Unauthorized:
        token = None  # the session ended already (expired, disabled): just drop the cookie
    if token is not None:
        await anyio.to_thread.run_sync(end_session, ui.database, token)
    response = to_login(request)
    clear_session_cookie(response, request, ui.settings)
    return response


async def account_page(request: Request) -> Response:
    user = await optional_user(request)
    if user is None:
        return to_login(request)
    return render("account.html", user=user, csrf_token=user.csrf_token)


async def account_submit(request: Request) -> Response:
    ui = web(request)
    form = await read_form(request)
    user = await form_user(request, form)
    current, new = field(form, "current"), field(form, "password")
    context: dict[str, Any] = {"user": user, "csrf_token": user.csrf_token}
    if new != field(form, "confirm"):
        return render("account.html", 400, error="The two new passwords differ.", **context)
    # The current password is checked under the login limits: a stolen session must not become a way to
    # guess the password (which would outlive the session) at argon2 speed.
    address = request.client.host if request.client else None
    try:
        await _limits(ui).check(user.name, address)
    except RateLimited as exc:
        page = render("account.html", 429, error=exc.message, **context)
        page.headers.update(exc.headers)
        return page
    if await anyio.to_thread.run_sync(authenticate_user, ui.database, user.name, current) is None:
        await _limits(ui).failed(user.name, address)
        return render("account.html", 403, error="The current password is wrong.", **context)
    try:
        await anyio.to_thread.run_sync(set_password, ui.database, user.name, new)
    except EmberError as exc:
        return render("account.html", exc.status, error=exc.message, **context)
    # Whoever else holds a session of this account (a stolen cookie, another device) is logged out.
    await anyio.to_thread.run_sync(lambda: end_sessions_of(ui.database, user.user_id,
                                                           keep_session_id=user.session_id))
    return render("account.html", notice="Your password was changed; your other sessions were ended.", **context)


async def me(request: Request) -> Response:
    user = await current_user(request)
    return JSONResponse({"name": user.name, "role": user.role, "csrf_token": user.csrf_token},
                        headers={"Cache-Control": "no-store"})


async def setup_page(request: Request) -> Response:
    from ember.db.users import admin_exists

    if await anyio.to_thread.run_sync(admin_exists, web(request).database):
        return render("message.html", 410, title="Setup done",
                      message="An admin account exists already; this link no longer works.")
    token = request.query_params.get("token", "")
    if not token:
        return render("message.html", 400, title="Setup", message="Open the setup link the server logged at start.")
    return form_page(request, "setup.html", token=token)


async def setup_submit(request: Request) -> Response:
    ui = web(request)
    form = await read_form(request)
    token, name, password = field(form, "token"), field(form, "username").strip(), field(form, "password")
    try:
        check_form_token(request, form)
        if password != field(form, "confirm"):
            return form_page(request, "setup.html", 400, token=token, username=name, error="The two passwords differ.")
        user = await anyio.to_thread.run_sync(create_first_admin, ui.database, token, name, password)
    except EmberError as exc:
        return form_page(request, "setup.html", exc.status, token=token, username=name, error=exc.message)
    if user is None:
        return render("message.html", 403, title="Setup link not valid",
                      message="This setup link is invalid, expired or used already.")
    log.info("the first admin %r was created through the setup link", user.name)
    return await _logged_in(request, user.id)
