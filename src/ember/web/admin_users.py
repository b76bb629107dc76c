"""Admin: users (approve, role, disable, reset password) and the run-time settings (sign-up, embedding model)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ember.config import SIGNUP_MODES
from ember.db.app_settings import get_setting, set_setting
from ember.db.sessions import end_sessions_of
from ember.db.users import User, get_user, list_users, set_disabled, set_password, set_role
from ember.edge import read_body
from ember.errors import BadRequest, UserNotFound
from ember.gateway.bodies import parse_object
from ember.web.accounts import signup_mode
from ember.web.admin_guard import admin_page, require_admin
from ember.web.services import WebUI, web

MAX_BODY = 16 * 1024


def _user_json(user: User) -> dict[str, Any]:
    return {"name": user.name, "role": user.role, "disabled": user.disabled,
            "created_at": user.created_at.isoformat()}


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await read_body(request, MAX_BODY, web(request).settings.body_timeout)
    return parse_object(raw)


async def users_page(request: Request) -> Response:
    return await admin_page(request, "admin_users.html", section="users")


async def settings_page(request: Request) -> Response:
    return await admin_page(request, "admin_settings.html", section="settings")


async def list_all(request: Request) -> Response:
    await require_admin(request)
    users = await anyio.to_thread.run_sync(list_users, web(request).database)
    return JSONResponse({"users": [_user_json(u) for u in users]})


async def update(request: Request) -> Response:
    """PATCH {"role"?, "disabled"?}: approve (pending -> user), promote, demote, disable or enable."""
    await require_admin(request)
    ui, name = web(request), request.path_params["name"]
    body = await _json_body(request)
    role, disabled = body.get("role"), body.get("disabled")
    if role is None and disabled is None:
        raise BadRequest("send 'role' and/or 'disabled'")
    if disabled is not None and not isinstance(disabled, bool):
        raise BadRequest("'disabled' must be true or false")
    user = await anyio.to_thread.run_sync(_apply, ui, name, role, disabled)
    return JSONResponse(_user_json(user))


def _apply(ui: WebUI, name: str, role: Any, disabled: bool | None) -> User:
    user = get_user(ui.database, name)
    if user is None:
        raise UserNotFound(name)
    if role is not None:
        if not isinstance(role, str):
            raise BadRequest("'role' must be a string")
        user = set_role(ui.database, name, role)
    if disabled is not None:
        user = set_disabled(ui.database, name, disabled)
        if disabled:
            end_sessions_of(ui.database, user.id)  # the user's open pages stop working now
    return user


async def reset_password(request: Request) -> Response:
    """POST {"password"}: an admin sets a new password; the user's sessions end."""
    await require_admin(request)
    ui, name = web(request), request.path_params["name"]
    password = (await _json_body(request)).get("password")
    if not isinstance(password, str):
        raise BadRequest("send the new 'password'")

    def reset() -> None:
        user = get_user(ui.database, name)
        if user is None:
            raise UserNotFound(name)
        set_password(ui.database, name, password)
        end_sessions_of(ui.database, user.id)

    await anyio.to_thread.run_sync(reset)
    return Response(status_code=204)


async def get_settings(request: Request) -> Response:
    await require_admin(request)
    ui = web(request)
    embed_model = await anyio.to_thread.run_sync(get_setting, ui.database, "embed_model", ui.settings.bundled_model)
    return JSONResponse({"signup": signup_mode(ui), "embed_model": embed_model})


async def put_settings(request: Request) -> Response:
    """PUT {"signup"?, "embed_model"?}."""
    await require_admin(request)
    ui = web(request)
    body = await _json_body(request)
    if "signup" in body:
        if body["signup"] not in SIGNUP_MODES:
            raise BadRequest(f"'signup' must be one of {', '.join(SIGNUP_MODES)}")
        await anyio.to_thread.run_sync(set_setting, ui.database, "signup", body["signup"])
    if "embed_model" in body:
        if not isinstance(body["embed_model"], str) or not body["embed_model"].strip():
            raise BadRequest("'embed_model' must be a model name")
        await anyio.to_thread.run_sync(set_setting, ui.database, "embed_model", body["embed_model"].strip())
    return await get_settings(request)
