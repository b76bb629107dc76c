"""Admin: the gateway's API keys. Listed by hint only; the secret is in the create answer and nowhere else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ember.db.keys import ApiKey, create_key, list_keys, revoke_key
from ember.db.tables import utcnow
from ember.db.vocabulary import SCOPES
from ember.errors import BadRequest
from ember.web.admin_guard import admin_page, require_admin
from ember.web.chat_json import json_body, string_list, text_field
from ember.web.services import WebUI, web

MAX_BODY = 16 * 1024
MAX_MODELS = 200


def key_json(key: ApiKey, now: datetime) -> dict[str, Any]:
    """Everything about a key but its secret (never stored) or hash (never shown)."""
    return {"name": key.name, "hint": key.hint, "user": key.user_name, "scopes": sorted(key.scopes),
            "models": sorted(key.models) if key.models is not None else None, "rpm": key.rpm, "tpm": key.tpm,
            "concurrency": key.concurrency, "created_at": key.created_at.isoformat(),
            "expires_at": key.expires_at.isoformat() if key.expires_at else None,
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
            "status": key.refusal(now) or "active"}


async def keys_page(request: Request) -> Response:
    return await admin_page(request, "admin_keys.html", section="keys", scopes=SCOPES)


async def list_all(request: Request) -> Response:
    await require_admin(request)
    keys = await anyio.to_thread.run_sync(list_keys, web(request).database)
    now = utcnow()
    return JSONResponse({"keys": [key_json(k, now) for k in keys]})


async def create(request: Request) -> Response:
    """POST {"name", "user", "scopes": [...], "models"?: [...]|null, "rpm"?, "tpm"?, "concurrency"?,
    "expires_at"?: ISO 8601}: 201 {"key": ..., "secret": ...}; the secret is not shown again."""
    await require_admin(request)
    ui, body = web(request), await json_body(request, max_bytes=MAX_BODY)
    key, secret = await anyio.to_thread.run_sync(_create, ui, body)
    return JSONResponse({"key": key_json(key, utcnow()), "secret": secret}, status_code=201)


def _create(ui: WebUI, body: dict[str, Any]) -> tuple[ApiKey, str]:
    models = body.get("models")
    return create_key(
        ui.database, name=text_field(body, "name", limit=200, required=True) or "",
        user_name=text_field(body, "user", limit=200, required=True, allow_empty=False) or "",
        scopes=string_list(body, "scopes", limit=len(SCOPES)),
        models=None if models is None else string_list(body, "models", limit=MAX_MODELS),
        rpm=body.get("rpm"), tpm=body.get("tpm"), concurrency=body.get("concurrency"),
        expires_at=expiry(body.get("expires_at")))


def expiry(value: Any) -> datetime | None:
    """An ISO 8601 time in the future (UTC when it names no zone), or None for never."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest('"expires_at" must be an ISO 8601 time')
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f'"expires_at" is not an ISO 8601 time: {value[:50]!r}') from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when <= utcnow():
        raise BadRequest('"expires_at" must be in the future')
    return when


async def revoke(request: Request) -> Response:
    await require_admin(request)
    key = await anyio.to_thread.run_sync(revoke_key, web(request).database, request.path_params["name"])
    return JSONResponse(key_json(key, utcnow()))
